/**
 * Issue 12 point 3: CORS through the proxy, over Ceph RGW — the exact requests a browser sends (the headless
 * browser itself drives the same flow in test/e2e/browser-cors). Preflights go unsigned to the store, whose CORS
 * rules answer them; `Origin` goes with every request the proxy makes for a browser, and the store's
 * Access-Control-* headers come back on SSE-C reads and writes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutBucketCorsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { bodyBytes, errorCode, newKey, rawRequest, rgwUpstream, sse, ssecHeaders, startTestProxy, type TestProxy, type UpstreamInfo } from '../support/proxy.ts';

let up: UpstreamInfo;
let t: TestProxy;
let s3: S3Client;
const bucket = `cors-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const origin = 'https://app.example.test';
const key = newKey();
const SSEC_NAMES = Object.keys(ssecHeaders(key)).join(',');

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
  s3 = t.client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(
    new PutBucketCorsCommand({
      Bucket: bucket,
      CORSConfiguration: {
        CORSRules: [
          {
            AllowedOrigins: [origin],
            AllowedMethods: ['GET', 'PUT', 'HEAD'],
            AllowedHeaders: ['*'],
            ExposeHeaders: ['ETag', 'x-amz-server-side-encryption-customer-key-MD5'],
            MaxAgeSeconds: 600,
          },
        ],
      },
    }),
  );
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'sealed.txt', Body: 'for the browser', ...sse(key) }));
});
after(async () => t?.close());

/**
 * The SDK's presigner with the SSE-C trio kept as signed headers (the browser sends them; the key stays out of
 * the URL), and no default checksum (a presigned URL cannot know the body's CRC; as against AWS).
 */
function presign(command: GetObjectCommand | PutObjectCommand): Promise<string> {
  return getSignedUrl(t.client({ requestChecksumCalculation: 'WHEN_REQUIRED' }), command, { expiresIn: 300, unhoistableHeaders: new Set(Object.keys(ssecHeaders(key)).map((h) => h.toLowerCase())) });
}

/** A request to a presigned URL, as `fetch` in a page of `origin` sends it. */
function browserRequest(url: string, method: string, headers: Record<string, string>, body?: Buffer | string) {
  const u = new URL(url);
  return rawRequest(t, up, {
    method,
    path: u.pathname,
    query: Object.fromEntries(u.searchParams),
    sign: false,
    headers: { origin, ...headers },
    ...(body === undefined ? {} : { body }),
  });
}

describe('CORS through the proxy', () => {
  test('a preflight for an SSE-C PUT (unsigned OPTIONS) is answered by the bucket\'s CORS rules', async () => {
    const r = await rawRequest(t, up, {
      method: 'OPTIONS',
      path: `/${bucket}/upload.bin`,
      sign: false,
      headers: { origin, 'access-control-request-method': 'PUT', 'access-control-request-headers': `${SSEC_NAMES},content-type`.toLowerCase() },
    });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.headers['access-control-allow-origin'], origin);
    assert.match(String(r.headers['access-control-allow-methods']), /PUT/);
    assert.match(String(r.headers['access-control-allow-headers']).toLowerCase(), /x-amz-server-side-encryption-customer-key/);
  });

  test('a preflight from an origin the rules do not allow: the store\'s 403', async () => {
    const r = await rawRequest(t, up, {
      method: 'OPTIONS',
      path: `/${bucket}/upload.bin`,
      sign: false,
      headers: { origin: 'https://evil.example.test', 'access-control-request-method': 'PUT' },
    });
    assert.equal(r.status, 403);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
  });

  test('a presigned SSE-C PUT and GET from the page: the CORS headers come back, the body round-trips encrypted', async () => {
    const body = randomBytes(50_000);
    const put = await browserRequest(await presign(new PutObjectCommand({ Bucket: bucket, Key: 'upload.bin', ...sse(key) })), 'PUT', ssecHeaders(key), body);
    assert.equal(put.status, 200, put.body.toString());
    assert.equal(put.headers['access-control-allow-origin'], origin);
    assert.match(String(put.headers['access-control-expose-headers']), /ETag/i);
    const get = await browserRequest(await presign(new GetObjectCommand({ Bucket: bucket, Key: 'upload.bin', ...sse(key) })), 'GET', ssecHeaders(key));
    assert.equal(get.status, 200);
    assert.equal(get.headers['access-control-allow-origin'], origin);
    assert.ok(get.body.equals(body));
    const viaSdk = await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'upload.bin', ...sse(key) }))).Body);
    assert.ok(viaSdk.equals(body));
  });

  test('a signed SSE-C GET carrying Origin, and its error answers, carry the store\'s CORS headers', async () => {
    const ok = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/sealed.txt`, headers: { origin, ...ssecHeaders(key) } });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.toString(), 'for the browser');
    assert.equal(ok.headers['access-control-allow-origin'], origin);
    const missing = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/nothing-here`, headers: { origin, ...ssecHeaders(key) } });
    assert.equal(missing.status, 404);
    assert.equal(errorCode(missing.body), 'NoSuchKey');
    assert.equal(missing.headers['access-control-allow-origin'], origin);
    const none = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/sealed.txt`, headers: ssecHeaders(key) });
    assert.equal(none.headers['access-control-allow-origin'], undefined, 'no Origin, no CORS headers');
  });
});

describe('CORS answers of another bucket', () => {
  test('a copy into a bucket without CORS rules, from one that has them: no Access-Control-* (the source\'s rules are not the destination\'s)', async () => {
    const plainBucket = `${bucket}-norules`;
    await s3.send(new CreateBucketCommand({ Bucket: plainBucket }));
    const r = await rawRequest(t, up, {
      method: 'PUT',
      path: `/${plainBucket}/copied.txt`,
      headers: { origin, 'x-amz-copy-source': `/${bucket}/sealed.txt`, ...ssecHeaders(key), ...Object.fromEntries(Object.entries(ssecHeaders(key)).map(([n, v]) => [n.replace('x-amz-', 'x-amz-copy-source-'), v])) },
    });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.headers['access-control-allow-origin'], undefined);
  });
});

describe('request ids', () => {
  test('a relayed store error names the same request id in its header and its XML body', async () => {
    const r = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/nothing-here`, headers: ssecHeaders(key) });
    assert.equal(r.status, 404);
    const inBody = /<RequestId>([^<]*)<\/RequestId>/.exec(r.body.toString())?.[1];
    assert.equal(inBody, r.headers['x-amz-request-id']);
  });
});
