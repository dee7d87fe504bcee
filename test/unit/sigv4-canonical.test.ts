/**
 * Canonicalisation helpers: RFC 3986 encoding, S3's reading of request targets (`+` is a space, `%2F`
 * stays in its segment, no dot-segment removal), query sorting, header value folding, dates, key derivation.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { S3Error } from '../../src/s3/errors.ts';
import {
  canonicalHeaderValue,
  canonicalPathFromWire,
  canonicalQueryFromRaw,
  canonicalQueryFromRecord,
  deriveSigningKey,
  formatAmzDate,
  parseAmzDate,
  parseQuery,
  parseRawQuery,
  uriEncode,
} from '../../src/sigv4/canonical.ts';

describe('uriEncode', () => {
  const cases: Array<[string, boolean, string]> = [
    ['a b', false, 'a%20b'],
    ['a+b', false, 'a%2Bb'],
    ['100%', false, '100%25'],
    ['A-Z_a.z~09', false, 'A-Z_a.z~09'],
    ["!'()*", false, '%21%27%28%29%2A'],
    ['a/b', false, 'a%2Fb'],
    ['a/b', true, 'a/b'],
    ['é€😀', false, '%C3%A9%E2%82%AC%F0%9F%98%80'],
    ['=&?#$', false, '%3D%26%3F%23%24'],
  ];
  for (const [input, keepSlash, want] of cases) {
    test(`${JSON.stringify(input)} (keepSlash=${keepSlash})`, () => assert.equal(uriEncode(input, keepSlash), want));
  }
});

describe('canonicalPathFromWire (client requests, S3 semantics)', () => {
  const cases: Array<[string, string]> = [
    ['', '/'],
    ['/', '/'],
    ['/test$file.text', '/test%24file.text'],
    ['/a+b', '/a%20b'],
    ['/a%2Bb', '/a%2Bb'],
    ['/a%2fb/c', '/a%2Fb/c'],
    ['/%7E%41', '/~A'],
    ['/a%20b', '/a%20b'],
    ['/a//b/./../c/', '/a//b/./../c/'],
    ['/%E2%82', '/%E2%82'],
    ['/%e2%82%ac', '/%E2%82%AC'],
  ];
  for (const [wire, want] of cases) {
    test(`${JSON.stringify(wire)} → ${want}`, () => assert.equal(canonicalPathFromWire(wire, true), want));
  }
  test('a malformed escape is InvalidURI 400', () => {
    for (const bad of ['/a%zz', '/a%2', '/a%']) {
      assert.throws(
        () => canonicalPathFromWire(bad, true),
        (e: unknown) => e instanceof S3Error && e.code === 'InvalidURI' && e.status === 400,
      );
    }
  });
  test('without plusAsSpace a raw + is a literal plus', () => assert.equal(canonicalPathFromWire('/a+b', false), '/a%2Bb'));
});

describe('query', () => {
  test('parse: + is a space, bare names have empty values, empty pieces dropped, repeats kept', () => {
    assert.deepEqual(parseQuery('a=1&b&&c=&a=2&d=x+y&e=%2B&f=%E2%82%AC&'), [
      { name: 'a', value: '1' },
      { name: 'b', value: '' },
      { name: 'c', value: '' },
      { name: 'a', value: '2' },
      { name: 'd', value: 'x y' },
      { name: 'e', value: '+' },
      { name: 'f', value: '€' },
    ]);
    assert.deepEqual(parseQuery('uploads&prefix=minio%2Fbig70'), [
      { name: 'uploads', value: '' },
      { name: 'prefix', value: 'minio/big70' },
    ]);
  });

  test('canonical: encoded, sorted by name then value, name= for empty', () => {
    assert.equal(
      canonicalQueryFromRaw(parseRawQuery('b=2&a=1&d=x+y&c&a=0&e=%2B&f=~')),
      'a=0&a=1&b=2&c=&d=x%20y&e=%2B&f=~',
    );
  });

  test('sort is by name first: "a" before "a-b" although "a-b=" < "a=" as strings', () => {
    assert.equal(canonicalQueryFromRaw(parseRawQuery('a-b=1&a=2')), 'a=2&a-b=1');
    assert.equal(canonicalQueryFromRecord({ 'a-b': '1', a: '2' }), 'a=2&a-b=1');
  });

  test('exclusion (X-Amz-Signature) is by exact decoded name', () => {
    assert.equal(
      canonicalQueryFromRaw(parseRawQuery('X-Amz-Signature=abc&x-amz-signature=def&z=1'), (n) => n === 'X-Amz-Signature'),
      'x-amz-signature=def&z=1',
    );
  });

  test('record form: arrays expand and sort', () => {
    assert.equal(canonicalQueryFromRecord({ b: ['2', '1'], 'x y': 'é' }), 'b=1&b=2&x%20y=%C3%A9');
  });
});

describe('header values', () => {
  test('trim and fold spaces and tabs only', () => {
    assert.equal(canonicalHeaderValue('  a \t  b  '), 'a b');
    assert.equal(canonicalHeaderValue('a\r\nb'), 'a b');
    assert.equal(canonicalHeaderValue('\u00a0x\u00a0'), '\u00a0x\u00a0');
    assert.equal(canonicalHeaderValue(''), '');
  });
});

describe('dates and keys', () => {
  test('parseAmzDate accepts only real ISO 8601 basic times', () => {
    assert.equal(parseAmzDate('20130524T000000Z')?.toISOString(), '2013-05-24T00:00:00.000Z');
    for (const bad of ['20130230T000000Z', '20130524T240000Z', '2013-05-24T00:00:00Z', '20130524T000000', '']) {
      assert.equal(parseAmzDate(bad), undefined, bad);
    }
    assert.equal(formatAmzDate(new Date('2026-11-22T15:17:18.999Z')), '20261122T151718Z');
  });

  test('signing key: the AWS documentation example (IAM, 20120215)', () => {
    // docs.aws.amazon.com/general/latest/gr/signature-v4-examples.html
    assert.equal(
      deriveSigningKey('wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', '20120215', 'us-east-1', 'iam').toString('hex'),
      'f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d',
    );
  });
});
