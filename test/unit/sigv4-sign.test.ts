/**
 * sign.ts: reproduces the AWS S3 documentation signatures, signs what the upstream needs signed, and emits
 * a URL whose path and query are encoded exactly as signed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { createUpstreamSigner, normaliseUpstreamPath } from '../../src/sigv4/sign.ts';
import { canonicalRequestForTesting, verifyRequest } from '../../src/sigv4/verify.ts';

interface VectorFile {
  credentials: { accessKeyId: string; secretAccessKey: string };
  now: string;
  vectors: Array<{ name: string; signature: string }>;
}
const file = JSON.parse(
  readFileSync(new URL('../vectors/sigv4-aws-s3-examples.json', import.meta.url), 'utf8'),
) as VectorFile;
const sig = (name: string) => file.vectors.find((v) => v.name.startsWith(name))?.signature;
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const aws = createUpstreamSigner({ ...file.credentials, region: 'us-east-1' });
const signingDate = new Date(file.now);
const base = { protocol: 'https:' as const, hostname: 'examplebucket.s3.amazonaws.com' };

describe('sign.ts reproduces the AWS S3 examples', () => {
  test('GET Object with Range', async () => {
    const s = await aws.sign(
      { ...base, method: 'GET', path: '/test.txt', query: {}, headers: { Range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY } },
      { signingDate },
    );
    assert.equal(
      s.headers['authorization'],
      `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=${sig('GET Object')}`,
    );
    assert.equal(s.headers['x-amz-date'], '20130524T000000Z');
    assert.equal(s.headers['host'], 'examplebucket.s3.amazonaws.com');
    assert.equal(s.url, 'https://examplebucket.s3.amazonaws.com/test.txt');
  });

  test('GET Bucket Lifecycle: a parameter without a value is sent as name=', async () => {
    const s = await aws.sign(
      { ...base, method: 'GET', path: '/', query: { lifecycle: '' }, headers: { 'x-amz-content-sha256': EMPTY } },
      { signingDate },
    );
    assert.match(s.headers['authorization'] ?? '', new RegExp(`Signature=${sig('GET Bucket Lifecycle')}$`));
    assert.equal(s.url, 'https://examplebucket.s3.amazonaws.com/?lifecycle=');
  });

  test('GET Bucket (List Objects): query sorted on the wire as signed', async () => {
    const s = await aws.sign(
      { ...base, method: 'GET', path: '/', query: { prefix: 'J', 'max-keys': '2' }, headers: { 'x-amz-content-sha256': EMPTY } },
      { signingDate },
    );
    assert.match(s.headers['authorization'] ?? '', new RegExp(`Signature=${sig('GET Bucket (List')}$`));
    assert.equal(s.url, 'https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J');
  });

  test('PUT Object test$file.text (the Date header is not signed by sign.ts, so only the path is checked)', async () => {
    const s = await aws.sign(
      {
        ...base,
        method: 'PUT',
        path: '/test$file.text',
        query: {},
        headers: { 'x-amz-storage-class': 'REDUCED_REDUNDANCY', 'x-amz-content-sha256': EMPTY },
      },
      { signingDate },
    );
    assert.equal(s.url, 'https://examplebucket.s3.amazonaws.com/test%24file.text');
  });
});

describe('sign.ts details', () => {
  const signer = createUpstreamSigner({ accessKeyId: 'AKIDUP', secretAccessKey: 'upstream-secret', region: 'eu-west-1' });
  const lookup = (ak: string) => (ak === 'AKIDUP' ? 'upstream-secret' : undefined);
  const now = new Date('2026-11-22T12:00:00Z');

  test('host carries a non-default port, and not the default one', async () => {
    const mk = (protocol: 'http:' | 'https:', port?: number) =>
      signer.sign({ method: 'GET', protocol, hostname: 'minio.local', ...(port === undefined ? {} : { port }), path: '/b/k', query: {}, headers: {} }, { signingDate: now });
    assert.equal((await mk('http:', 9000)).headers['host'], 'minio.local:9000');
    assert.equal((await mk('http:', 9000)).url, 'http://minio.local:9000/b/k');
    assert.equal((await mk('http:', 80)).headers['host'], 'minio.local');
    assert.equal((await mk('https:', 443)).headers['host'], 'minio.local');
    assert.equal((await mk('https:')).url, 'https://minio.local/b/k');
    assert.equal((await mk('https:', 80)).headers['host'], 'minio.local:80');
    const v6 = await signer.sign({ method: 'GET', protocol: 'http:', hostname: '::1', port: 9000, path: '/b', query: {}, headers: {} }, { signingDate: now });
    assert.equal(v6.headers['host'], '[::1]:9000');
    assert.equal(v6.url, 'http://[::1]:9000/b');
  });

  test('content-length, content-type, content-md5 and x-amz-* are signed; hop-by-hop and user-agent are not', async () => {
    const s = await signer.sign(
      {
        method: 'PUT',
        protocol: 'https:',
        hostname: 's3.eu-west-1.amazonaws.com',
        path: '/b/k',
        query: { partNumber: '2', uploadId: 'a/b+c==' },
        headers: {
          'Content-Length': '1048608',
          'Content-Type': 'application/octet-stream',
          'Content-MD5': 'rL0Y20zC+Fzt72VPzMSk2A==',
          'x-amz-meta-sse-envelope': 'v1:abc',
          'x-amz-storage-class': 'STANDARD',
          'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
          'User-Agent': 's3-ssec-proxy',
          Expect: '100-continue',
          'Transfer-Encoding': 'chunked',
          Connection: 'keep-alive',
          Host: 'ignored.example',
          Authorization: 'AWS4-HMAC-SHA256 stale',
          'X-Amz-Date': '19990101T000000Z',
          Date: 'Fri, 01 Jan 1999 00:00:00 GMT',
        },
      },
      { signingDate: now },
    );
    const signedHeaders = /SignedHeaders=([^,]+)/.exec(s.headers['authorization'] ?? '')?.[1];
    assert.equal(
      signedHeaders,
      'content-length;content-md5;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-sse-envelope;x-amz-storage-class',
    );
    assert.equal(s.headers['host'], 's3.eu-west-1.amazonaws.com');
    assert.equal(s.headers['x-amz-date'], '20261122T120000Z');
    assert.equal(s.headers['date'], undefined);
    assert.equal(s.headers['user-agent'], 's3-ssec-proxy');
    assert.equal(s.url, 'https://s3.eu-west-1.amazonaws.com/b/k?partNumber=2&uploadId=a%2Fb%2Bc%3D%3D');
    for (const name of Object.keys(s.headers)) assert.equal(name, name.toLowerCase());
    // What the upstream recomputes from the wire (minus hop-by-hop headers, which proxies may rewrite):
    const { expect: _e, 'transfer-encoding': _t, connection: _c, ...wire } = s.headers;
    verifyRequest({ method: 'PUT', url: s.url.slice('https://s3.eu-west-1.amazonaws.com'.length), headers: wire }, { lookupSecret: lookup, now, region: 'eu-west-1' });
  });

  test('x-amz-content-sha256 defaults to UNSIGNED-PAYLOAD; the body is never hashed', async () => {
    const s = await signer.sign({ method: 'PUT', protocol: 'https:', hostname: 'h', path: '/b/k', query: {}, headers: {} }, { signingDate: now });
    assert.equal(s.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD');
    const t = await signer.sign(
      { method: 'PUT', protocol: 'https:', hostname: 'h', path: '/b/k', query: {}, headers: { 'X-Amz-Content-SHA256': EMPTY } },
      { signingDate: now },
    );
    assert.equal(t.headers['x-amz-content-sha256'], EMPTY);
  });

  test('paths are normalised to RFC 3986; a raw + is a literal plus; %2F stays inside its segment', async () => {
    assert.equal(normaliseUpstreamPath('/b/a b+c%2fd%7e!'), '/b/a%20b%2Bc%2Fd~%21');
    assert.equal(normaliseUpstreamPath('/b//x/./../y/'), '/b//x/./../y/');
    assert.equal(normaliseUpstreamPath('/b/%E2%82%AC'), '/b/%E2%82%AC');
    assert.throws(() => normaliseUpstreamPath('b/k'), TypeError);
    const s = await signer.sign({ method: 'GET', protocol: 'https:', hostname: 'h', path: '/b/a+b%2fc', query: {}, headers: {} }, { signingDate: now });
    assert.equal(s.url, 'https://h/b/a%2Bb%2Fc');
    // The canonical URI the upstream computes from that wire path is the one that was signed.
    const cr = canonicalRequestForTesting({ method: 'GET', url: '/b/a%2Bb%2Fc', headers: s.headers });
    assert.equal(cr.split('\n')[1], '/b/a%2Bb%2Fc');
    verifyRequest({ method: 'GET', url: '/b/a%2Bb%2Fc', headers: s.headers }, { lookupSecret: lookup, now });
  });

  test('repeated query names are sent and signed once per value, sorted', async () => {
    const s = await signer.sign(
      { method: 'GET', protocol: 'https:', hostname: 'h', path: '/b', query: { b: ['2', '1'], a: '', 'a-b': 'x y' }, headers: {} },
      { signingDate: now },
    );
    assert.equal(s.url, 'https://h/b?a=&a-b=x%20y&b=1&b=2');
    verifyRequest({ method: 'GET', url: s.url.slice('https://h'.length), headers: s.headers }, { lookupSecret: lookup, now });
  });

  test('the same header given twice in different case is a programming error', async () => {
    await assert.rejects(
      signer.sign({ method: 'GET', protocol: 'https:', hostname: 'h', path: '/b', query: {}, headers: { 'X-Amz-Meta-A': '1', 'x-amz-meta-a': '2' } }),
      TypeError,
    );
  });
});
