import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { S3Error } from '../../src/s3/errors.ts';
import { COPY_SSEC_PREFIX, hasSsecHeaders, parseCustomerKey, ssecEchoHeaders } from '../../src/sse-c/customer-key.ts';

const raw = randomBytes(32);
const b64 = raw.toString('base64');
const md5 = createHash('md5').update(raw).digest('base64');
const trio = (p = 'x-amz-server-side-encryption-customer-') => ({
  [p + 'algorithm']: 'AES256',
  [p + 'key']: b64,
  [p + 'key-md5']: md5,
});

function code(fn: () => unknown): [string, number, string] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof S3Error);
    return [e.code, e.status, e.message];
  }
  assert.fail('expected an S3Error');
}

test('no headers → undefined; a full trio → the raw key and its MD5', () => {
  assert.equal(parseCustomerKey({}, 'write'), undefined);
  const k = parseCustomerKey(trio(), 'write')!;
  assert.ok(k.key.equals(raw));
  assert.equal(k.keyMd5, md5);
  assert.deepEqual(ssecEchoHeaders(k), {
    'x-amz-server-side-encryption-customer-algorithm': 'AES256',
    'x-amz-server-side-encryption-customer-key-MD5': md5,
  });
});

test('copy-source trio is read with its own prefix', () => {
  const h = trio(COPY_SSEC_PREFIX);
  assert.ok(hasSsecHeaders(h, COPY_SSEC_PREFIX));
  assert.ok(!hasSsecHeaders(h));
  assert.ok(parseCustomerKey(h, 'read', COPY_SSEC_PREFIX)!.key.equals(raw));
});

test('partial trios and other algorithms → 400 InvalidArgument', () => {
  const t = trio();
  for (const drop of ['x-amz-server-side-encryption-customer-algorithm', 'x-amz-server-side-encryption-customer-key']) {
    const h: Record<string, string> = { ...t };
    delete h[drop];
    for (const use of ['read', 'write'] as const) assert.deepEqual(code(() => parseCustomerKey(h, use)).slice(0, 2), ['InvalidArgument', 400]);
  }
  assert.deepEqual(code(() => parseCustomerKey({ ...t, 'x-amz-server-side-encryption-customer-algorithm': 'aws:kms' }, 'read')).slice(0, 2), [
    'InvalidArgument',
    400,
  ]);
});

test('missing MD5: allowed on reads, 400 on writes', () => {
  const h: Record<string, string> = { ...trio() };
  delete h['x-amz-server-side-encryption-customer-key-md5'];
  assert.ok(parseCustomerKey(h, 'read')!.key.equals(raw));
  assert.deepEqual(code(() => parseCustomerKey(h, 'write')).slice(0, 2), ['InvalidArgument', 400]);
});

test('keys of 24 and 44 bytes, or not base64: writes 400, reads 403', () => {
  for (const bad of [randomBytes(24).toString('base64'), randomBytes(44).toString('base64'), '!!!notbase64!!!']) {
    const h = { ...trio(), 'x-amz-server-side-encryption-customer-key': bad };
    assert.deepEqual(code(() => parseCustomerKey(h, 'write')), [
      'InvalidArgument',
      400,
      'The secret key was invalid for the specified algorithm.',
    ]);
    assert.deepEqual(code(() => parseCustomerKey(h, 'read')).slice(0, 2), ['AccessDenied', 403]);
  }
});

test('an MD5 of another key → 400 with S3\'s message; the error never carries the key', () => {
  const h = { ...trio(), 'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update('x').digest('base64') };
  try {
    parseCustomerKey(h, 'read');
    assert.fail();
  } catch (e) {
    assert.ok(e instanceof S3Error);
    assert.equal(e.message, 'The calculated MD5 hash of the key did not match the hash that was provided.');
    assert.ok(!JSON.stringify({ ...e, m: e.message }).includes(b64));
  }
});

test('an MD5 or a key without its base64 padding is refused as S3 and MinIO do (400 writes, 403 reads for the key)', () => {
  const h = trio();
  const unpaddedMd5 = md5.replace(/=+$/, '');
  assert.notEqual(unpaddedMd5, md5);
  assert.deepEqual(code(() => parseCustomerKey({ ...h, 'x-amz-server-side-encryption-customer-key-md5': unpaddedMd5 }, 'write')).slice(0, 2), ['InvalidArgument', 400]);
  assert.deepEqual(code(() => parseCustomerKey({ ...h, 'x-amz-server-side-encryption-customer-key-md5': unpaddedMd5 }, 'read')).slice(0, 2), ['InvalidArgument', 400]);
  const unpaddedKey = b64.replace(/=+$/, '');
  assert.deepEqual(code(() => parseCustomerKey({ ...h, 'x-amz-server-side-encryption-customer-key': unpaddedKey }, 'write')).slice(0, 2), ['InvalidArgument', 400]);
  assert.deepEqual(code(() => parseCustomerKey({ ...h, 'x-amz-server-side-encryption-customer-key': unpaddedKey }, 'read')).slice(0, 2), ['AccessDenied', 403]);
});
