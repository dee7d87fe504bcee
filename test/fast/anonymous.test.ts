/**
 * Issue 12 point 1, the attacker's side: an anonymous request reaches the store with no signature at all —
 * never signed with a credential of the proxy's, also for the requests the proxy makes on its behalf (the
 * HEAD and record reads of a cold SSE-C read, a listing's probes) — so the store answers it as it would answer
 * the client directly (this double, like a private bucket, refuses every unsigned request).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { errorCode, newKey, openSsecPut, rawRequest, sse, ssecHeaders, startTestProxy } from '../support/proxy.ts';
import { anotherProxy, startFast, type Fast } from './harness.ts';

let fast: Fast;
const bucket = 'anon';
const key = newKey();
before(async () => {
  fast = await startFast({ buckets: [bucket] });
  await fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'sealed', Body: Buffer.alloc(200_000, 7), ...sse(key) }));
});
after(async () => fast.close());

test('anonymous GET, HEAD, listing and PUT against a private store: every upstream request unsigned, the store\'s 403 relayed', async () => {
  const cold = await anotherProxy(fast.double);
  try {
    fast.double.resetRequests();
    const anon = (r: Parameters<typeof rawRequest>[2]) => rawRequest(cold.proxy, { accessKeyId: 'none', secretAccessKey: 'none', region: 'us-east-1' }, { ...r, sign: false });
    const answers = [
      await anon({ method: 'GET', path: `/${bucket}/sealed`, headers: ssecHeaders(key) }),
      await anon({ method: 'GET', path: `/${bucket}/sealed`, headers: { ...ssecHeaders(key), range: 'bytes=5-9' } }),
      await anon({ method: 'HEAD', path: `/${bucket}/sealed`, headers: ssecHeaders(key) }),
      await anon({ method: 'GET', path: `/${bucket}`, query: { 'list-type': '2' } }),
      await anon({ method: 'PUT', path: `/${bucket}/new`, headers: ssecHeaders(key), body: 'x' }),
    ];
    for (const a of answers) assert.equal(a.status, 403);
    assert.equal(errorCode(answers[0]!.body), 'AccessDenied');
    // The replica's own read of the bucket's policy (GET ?policy, policy/stored.ts) is its request, not the
    // client's: it is the only signed one, and it reads nothing but the policy.
    const policyReads = fast.double.requests.filter((r) => 'policy' in r.query);
    assert.ok(policyReads.every((r) => r.method === 'GET' && Object.keys(r.query).length === 1), JSON.stringify(policyReads.map((r) => [r.method, r.query])));
    const seen = fast.double.requests.filter((r) => !('policy' in r.query));
    assert.ok(seen.length >= answers.length, `${seen.length} upstream requests`);
    for (const r of seen) {
      assert.equal(r.headers.authorization, undefined, `${r.method} ${r.path} was signed`);
      assert.ok(!Object.keys(r.query).some((k) => /signature|credential/i.test(k)), `${r.method} ${r.path} carried a query signature`);
    }
    assert.equal(fast.double.objects.get(bucket, 'new'), undefined);
  } finally {
    await cold.proxy.close();
  }
});

test('a request with aws-chunked signed framing but no signature is refused before its body is read', async () => {
  fast.double.resetRequests();
  const r = await rawRequest(fast.proxy, { accessKeyId: 'none', secretAccessKey: 'none', region: 'us-east-1' }, {
    method: 'PUT',
    path: `/${bucket}/framed`,
    sign: false,
    headers: { 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'x-amz-decoded-content-length': '1' },
    body: '1;chunk-signature=00\r\nx\r\n0;chunk-signature=00\r\n\r\n',
  });
  assert.equal(r.status, 403);
  assert.equal(fast.double.requests.length, 0);
});

test('anonymous uploads hold at most a quarter of the upload slots: beyond, 503 SlowDown; signed uploads still go through', async () => {
  const capped = await startTestProxy(fast.double, { SSEC_PROXY_MAX_CONCURRENT_UPLOADS: '4' });
  const none = { accessKeyId: 'none', secretAccessKey: 'none', region: 'us-east-1' };
  try {
    const held = await openSsecPut(capped, none, `/${bucket}/slow`, key, 100_000, { sign: false });
    held.write(Buffer.alloc(10, 1));
    await new Promise((r) => setTimeout(r, 200));
    const second = await rawRequest(capped, none, { method: 'PUT', path: `/${bucket}/second`, sign: false, headers: ssecHeaders(key), body: 'x' });
    assert.equal(second.status, 503);
    assert.equal(errorCode(second.body), 'SlowDown');
    await capped.client().send(new PutObjectCommand({ Bucket: bucket, Key: 'signed', Body: 'still served', ...sse(key) }));
    held.destroy();
  } finally {
    await capped.close();
  }
});

test('anonymous plain (pass-through) uploads take from the same anonymous share: a second one trickling is 503 SlowDown', async () => {
  const capped = await startTestProxy(fast.double, { SSEC_PROXY_MAX_CONCURRENT_UPLOADS: '4' });
  const none = { accessKeyId: 'none', secretAccessKey: 'none', region: 'us-east-1' };
  try {
    const url = new URL(capped.endpoint);
    const https = await import('node:https');
    const held = https.request({ host: url.hostname, port: url.port, method: 'PUT', path: `/${bucket}/plain-slow`, ca: capped.caPem, agent: false, headers: { 'content-length': '100000' } });
    held.on('error', () => {});
    held.write(Buffer.alloc(10, 1));
    await new Promise((r) => setTimeout(r, 200));
    const second = await rawRequest(capped, none, { method: 'PUT', path: `/${bucket}/plain-second`, sign: false, body: 'x' });
    assert.equal(second.status, 503);
    assert.equal(errorCode(second.body), 'SlowDown');
    held.destroy();
  } finally {
    await capped.close();
  }
});
