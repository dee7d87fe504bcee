/**
 * Issue 12 point 1: requests with no signature are forwarded unsigned, so Ceph RGW's ACLs decide as they would
 * for the client directly; SSE-C still applies (it needs only the customer key). Nothing is readable through
 * the proxy that the store would not show directly, and SSEC_PROXY_ALLOW_ANONYMOUS=false refuses them all.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutBucketAclCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { bodyBytes, directClient, errorCode, newKey, rawRequest, rgwUpstream, sse, ssecHeaders, startTestProxy, type TestProxy, type UpstreamInfo } from '../support/proxy.ts';

let up: UpstreamInfo;
let t: TestProxy;
let s3: S3Client;
const stamp = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const publicBucket = `anon-pub-${stamp}`;
const privateBucket = `anon-priv-${stamp}`;
const writableBucket = `anon-rw-${stamp}`;
const key = newKey();
const secret = randomBytes(3000);

/** An unsigned request through the proxy, as a browser or `curl` sends it. */
const anonymous = (r: Parameters<typeof rawRequest>[2]) => rawRequest(t, up, { ...r, sign: false });

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
  s3 = t.client();
  await s3.send(new CreateBucketCommand({ Bucket: publicBucket, ACL: 'public-read' }));
  await s3.send(new CreateBucketCommand({ Bucket: privateBucket }));
  await s3.send(new CreateBucketCommand({ Bucket: writableBucket }));
  await s3.send(new PutBucketAclCommand({ Bucket: writableBucket, ACL: 'public-read-write' }));
  for (const b of [publicBucket, privateBucket]) {
    await s3.send(new PutObjectCommand({ Bucket: b, Key: 'plain.txt', Body: 'public words', ACL: 'public-read' }));
    await s3.send(new PutObjectCommand({ Bucket: b, Key: 'sealed.bin', Body: secret, ACL: 'public-read', ...sse(key) }));
    await s3.send(new PutObjectCommand({ Bucket: b, Key: 'private.txt', Body: 'not for you' }));
  }
});
after(async () => t?.close());

describe('anonymous requests through the proxy, decided by the store', () => {
  test('a public-read object: 200 with its bytes, as directly', async () => {
    const r = await anonymous({ method: 'GET', path: `/${publicBucket}/plain.txt` });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'public words');
  });

  test('a public-read SSE-C object: the key alone decrypts it (200, whole and ranged); without the key S3\'s 400', async () => {
    const whole = await anonymous({ method: 'GET', path: `/${publicBucket}/sealed.bin`, headers: ssecHeaders(key) });
    assert.equal(whole.status, 200);
    assert.ok(whole.body.equals(secret));
    const ranged = await anonymous({ method: 'GET', path: `/${publicBucket}/sealed.bin`, headers: { ...ssecHeaders(key), range: 'bytes=100-199' } });
    assert.equal(ranged.status, 206);
    assert.ok(ranged.body.equals(secret.subarray(100, 200)));
    const keyless = await anonymous({ method: 'GET', path: `/${publicBucket}/sealed.bin` });
    assert.equal(keyless.status, 400);
    assert.equal(errorCode(keyless.body), 'InvalidRequest');
    const wrong = await anonymous({ method: 'GET', path: `/${publicBucket}/sealed.bin`, headers: ssecHeaders(newKey()) });
    assert.equal(wrong.status, 403);
  });

  test('a public-read bucket lists anonymously, with plaintext sizes', async () => {
    const r = await anonymous({ method: 'GET', path: `/${publicBucket}`, query: { 'list-type': '2' } });
    assert.equal(r.status, 200);
    const xml = r.body.toString();
    assert.match(xml, /<Key>sealed\.bin<\/Key>/);
    assert.match(xml, new RegExp(`<Key>sealed\\.bin</Key>[\\s\\S]*?<Size>${secret.length}</Size>`));
  });

  test('a private object in a public bucket, and everything in a private bucket: 403 AccessDenied from the store', async () => {
    for (const path of [`/${publicBucket}/private.txt`, `/${privateBucket}/private.txt`]) {
      const r = await anonymous({ method: 'GET', path });
      assert.equal(r.status, 403, path);
      assert.equal(errorCode(r.body), 'AccessDenied');
    }
    const list = await anonymous({ method: 'GET', path: `/${privateBucket}`, query: { 'list-type': '2' } });
    assert.equal(list.status, 403);
    const put = await anonymous({ method: 'PUT', path: `/${publicBucket}/intruder`, body: 'x' });
    assert.equal(put.status, 403);
  });

  test('a public-write bucket takes an anonymous SSE-C PUT: encrypted in the store, read back with the key', async () => {
    const body = randomBytes(70_000);
    const r = await anonymous({ method: 'PUT', path: `/${writableBucket}/dropped.bin`, headers: ssecHeaders(key), body });
    assert.equal(r.status, 200, r.body.toString());
    const stored = await bodyBytes((await directClient(up).send(new GetObjectCommand({ Bucket: writableBucket, Key: 'dropped.bin' }))).Body);
    assert.ok(stored.indexOf(body.subarray(0, 32)) < 0, 'the store holds ciphertext');
    const back = await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: writableBucket, Key: 'dropped.bin', ...sse(key) }))).Body);
    assert.ok(back.equals(body));
  });

  test('an anonymous POST form (no policy, SSE-C fields) to a public-write bucket is stored encrypted; to a private one the store\'s 403', async () => {
    const file = randomBytes(40_000);
    const form = (fields: Record<string, string>) => {
      const boundary = `----anon${randomBytes(6).toString('hex')}`;
      const parts = Object.entries(fields).map(([n, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${n}"\r\n\r\n${v}\r\n`);
      const body = Buffer.concat([
        Buffer.from(parts.join('') + `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
        file,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      return { body, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
    };
    const ssecFields = Object.fromEntries(Object.entries(ssecHeaders(key)));
    const ok = form({ key: 'posted.bin', ...ssecFields });
    const r = await anonymous({ method: 'POST', path: `/${writableBucket}`, headers: ok.headers, body: ok.body });
    assert.equal(r.status, 204, r.body.toString());
    const stored = await bodyBytes((await directClient(up).send(new GetObjectCommand({ Bucket: writableBucket, Key: 'posted.bin' }))).Body);
    assert.ok(stored.indexOf(file.subarray(0, 32)) < 0, 'the store holds ciphertext');
    const back = await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: writableBucket, Key: 'posted.bin', ...sse(key) }))).Body);
    assert.ok(back.equals(file));
    const refused = form({ key: 'posted.bin', ...ssecFields });
    const denied = await anonymous({ method: 'POST', path: `/${privateBucket}`, headers: refused.headers, body: refused.body });
    assert.equal(denied.status, 403);
    assert.equal(errorCode(denied.body), 'AccessDenied');
  });

  test('SSEC_PROXY_ALLOW_ANONYMOUS=false: 403 AccessDenied at the proxy, nothing forwarded', async () => {
    const closed = await startTestProxy(up, { SSEC_PROXY_ALLOW_ANONYMOUS: 'false' });
    try {
      const r = await rawRequest(closed, up, { method: 'GET', path: `/${publicBucket}/plain.txt`, sign: false });
      assert.equal(r.status, 403);
      assert.equal(errorCode(r.body), 'AccessDenied');
      assert.equal(closed.logs.findLast((l) => l.op === 'GetObject')?.upstreamRequests, 0);
    } finally {
      await closed.close();
    }
  });
});
