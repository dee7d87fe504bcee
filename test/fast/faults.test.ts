/**
 * Issue 11 items 3 and 6: a store that resets mid-answer is a retryable 503, never a 500; a client that goes
 * away is logged as such (499), not as the proxy's error; slow uploaders hold upload connections only, so a
 * read through the same proxy is still answered at once.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { newKey, openSsecPut, sse, startTestProxy, type TestProxy } from '../support/proxy.ts';
import { rejectsWith, startFast, type Fast } from './harness.ts';

describe('a store that resets the connection in the middle of an answer', () => {
  let store: http.Server;
  let proxy: TestProxy;
  before(async () => {
    // Answers every request with the headers of a 1000-byte XML body, 10 bytes of it, then a reset.
    store = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/xml', 'content-length': '1000' });
      res.write('<?xml vers');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    await new Promise<void>((r) => store.listen(0, '127.0.0.1', r));
    const port = (store.address() as AddressInfo).port;
    proxy = await startTestProxy({ endpoint: `http://127.0.0.1:${port}`, accessKeyId: 'AKFAULT', secretAccessKey: 'fault-secret', region: 'us-east-1' });
  });
  after(async () => {
    await proxy.close();
    store.closeAllConnections();
    await new Promise((r) => store.close(r));
  });

  test('a GET whose body the store cuts after the headers: the client sees a failed read; logged as the store 503 with a warning, not as a client that left', async () => {
    const s3 = proxy.client();
    await assert.rejects(async () => {
      const r = await s3.send(new GetObjectCommand({ Bucket: 'any', Key: 'plain-object' }));
      await r.Body!.transformToByteArray();
    });
    await new Promise((r) => setTimeout(r, 100));
    const lines = proxy.logs.filter((l) => l.op === 'GetObject');
    assert.ok(lines.length > 0 && lines.every((l) => l.status === 503), JSON.stringify(lines));
    assert.ok(proxy.logs.some((l) => l.level === 'warn'), 'a warning for the store failure');
  });

  test('a listing whose answer is cut: 503 ServiceUnavailable (retryable), not 500', async () => {
    const s3 = proxy.client();
    await rejectsWith(s3.send(new ListObjectsV2Command({ Bucket: 'any' })), 'ServiceUnavailable', 503);
    const lines = proxy.logs.filter((l) => l.op === 'ListObjectsV2');
    assert.ok(lines.length > 0 && lines.every((l) => l.status === 503), JSON.stringify(lines));
  });
});

/** The status of the answer to `req` (a request left hanging), 0 if none comes within 5 s; then `req` is let go. */
async function answerStatus(req: http.ClientRequest): Promise<number> {
  const status = await new Promise<number>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    setTimeout(() => resolve(0), 5000);
  });
  req.destroy();
  return status;
}

/** Starts a signed SSE-C PUT of `total` bytes through `proxy`, sends `sent` of them, and returns the request. */
async function partialPut(
  proxy: Pick<TestProxy, 'endpoint' | 'caPem'>,
  up: Parameters<typeof openSsecPut>[1],
  path: string,
  key: ReturnType<typeof newKey>,
  total: number,
  sent: number,
): Promise<http.ClientRequest> {
  const req = await openSsecPut(proxy, up, path, key, total);
  req.write(Buffer.alloc(sent, 1));
  return req;
}

describe('clients that go away, and clients that upload slowly', () => {
  let fast: Fast;
  const bucket = 'faults';
  const key = newKey();
  before(async () => {
    fast = await startFast({ buckets: [bucket] });
  });
  after(async () => fast.close());

  test('an upload cut by its client: logged with status 499, no warning, nothing stored', async () => {
    const req = await partialPut(fast.proxy, fast.double, `/${bucket}/gone`, key, 100_000, 10_000);
    await new Promise((r) => setTimeout(r, 200));
    req.destroy();
    await new Promise((r) => setTimeout(r, 300));
    const line = fast.proxy.logs.findLast((l) => l.op === 'PutObject' && l.key === 'gone');
    assert.equal(line?.status, 499, JSON.stringify(line));
    assert.ok(!fast.proxy.logs.some((l) => l.level === 'warn'), JSON.stringify(fast.proxy.logs.filter((l) => l.level === 'warn')));
    assert.equal(fast.double.objects.get(bucket, 'gone'), undefined);
  });

  test('140 uploads stalled after their first chunk leave a GET answered at once', async () => {
    await fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'readable', Body: 'still served', ...sse(key) }));
    const stalled = await Promise.all(Array.from({ length: 140 }, (_, i) => partialPut(fast.proxy, fast.double, `/${bucket}/slow-${i}`, key, 1_000_000, 70_000)));
    try {
      await new Promise((r) => setTimeout(r, 300));
      const got = await fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'readable', ...sse(key) }));
      assert.equal(await got.Body!.transformToString(), 'still served');
    } finally {
      for (const r of stalled) r.destroy();
    }
  });
});

describe('a cap on concurrent uploads', () => {
  let fast: Fast;
  const bucket = 'capped';
  const key = newKey();
  before(async () => {
    fast = await startFast({ buckets: [bucket] });
  });
  after(async () => fast.close());

  test('beyond SSEC_PROXY_MAX_CONCURRENT_UPLOADS: 503 SlowDown at once; reads still served; a slot frees when an upload ends', async () => {
    const { startTestProxy: start } = await import('../support/proxy.ts');
    const capped = await start(fast.double, { SSEC_PROXY_MAX_CONCURRENT_UPLOADS: '2' });
    try {
      await capped.client().send(new PutObjectCommand({ Bucket: bucket, Key: 'readable', Body: 'served', ...sse(key) }));
      const held = [await partialPut(capped, fast.double, `/${bucket}/a`, key, 100_000, 10), await partialPut(capped, fast.double, `/${bucket}/b`, key, 100_000, 10)];
      await new Promise((r) => setTimeout(r, 200));
      await rejectsWith(capped.client().send(new PutObjectCommand({ Bucket: bucket, Key: 'c', Body: 'third', ...sse(key) })), 'SlowDown', 503);
      const got = await capped.client().send(new GetObjectCommand({ Bucket: bucket, Key: 'readable', ...sse(key) }));
      assert.equal(await got.Body!.transformToString(), 'served');
      for (const r of held) r.destroy();
      await new Promise((r) => setTimeout(r, 300));
      await capped.client().send(new PutObjectCommand({ Bucket: bucket, Key: 'c', Body: 'third', ...sse(key) }));
    } finally {
      await capped.close();
    }
  });
});

describe('an upload body that stops', () => {
  let fast: Fast;
  const bucket = 'idle';
  const key = newKey();
  before(async () => {
    fast = await startFast({ buckets: [bucket] });
  });
  after(async () => fast.close());

  test('is S3\'s 400 RequestTimeout after SSEC_PROXY_BODY_IDLE_SECONDS, and nothing is stored', async () => {
    const { startTestProxy: start } = await import('../support/proxy.ts');
    const strict = await start(fast.double, { SSEC_PROXY_BODY_IDLE_SECONDS: '1' });
    try {
      const req = await partialPut(strict, fast.double, `/${bucket}/stopped`, key, 100_000, 1000);
      const status = await answerStatus(req);
      assert.equal(status, 400);
      assert.equal(strict.logs.findLast((l) => l.op === 'PutObject')?.status, 400);
      assert.equal(fast.double.objects.get(bucket, 'stopped'), undefined);
    } finally {
      await strict.close();
    }
  });
});

describe('more connections than SSEC_PROXY_MAX_CONNECTIONS', () => {
  let fast: Fast;
  const bucket = 'crowded';
  before(async () => {
    fast = await startFast({ buckets: [bucket] });
  });
  after(async () => fast.close());

  test('the connection beyond the cap is closed at once (the memory budget holds); one frees, the next is served', async () => {
    const { startTestProxy: start } = await import('../support/proxy.ts');
    const capped = await start(fast.double, { SSEC_PROXY_MAX_CONNECTIONS: '3' });
    const url = new URL(capped.endpoint);
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const s = net.connect(Number(url.port), url.hostname);
        await once(s, 'connect');
        idle.push(s);
      }
      await new Promise((r) => setTimeout(r, 100));
      const extra = tls.connect({ port: Number(url.port), host: url.hostname, ca: capped.caPem, servername: 'localhost' });
      const outcome = await new Promise<string>((resolve) => {
        extra.once('secureConnect', () => resolve('handshake done'));
        extra.once('error', () => resolve('refused'));
        extra.once('close', () => resolve('refused'));
      });
      extra.destroy();
      assert.equal(outcome, 'refused');
      idle.pop()!.destroy();
      await new Promise((r) => setTimeout(r, 100));
      await capped.client().send(new PutObjectCommand({ Bucket: bucket, Key: 'served', Body: 'yes' }));
      assert.equal(fast.double.objects.get(bucket, 'served')?.body.length, 3);
    } finally {
      for (const s of idle) s.destroy();
      await capped.close();
    }
  });
});

describe('a plain (pass-through) upload body that stops', () => {
  let fast: Fast;
  const bucket = 'idle-plain';
  before(async () => {
    fast = await startFast({ buckets: [bucket] });
  });
  after(async () => fast.close());

  test('is S3\'s 400 RequestTimeout after SSEC_PROXY_BODY_IDLE_SECONDS, the store\'s request abandoned, nothing stored', async () => {
    const { startTestProxy: start } = await import('../support/proxy.ts');
    const strict = await start(fast.double, { SSEC_PROXY_BODY_IDLE_SECONDS: '1' });
    try {
      const url = new URL(strict.endpoint);
      const req = https.request({ host: url.hostname, port: url.port, method: 'PUT', path: `/${bucket}/stalled`, ca: strict.caPem, agent: false, headers: { 'content-length': '100000' } });
      req.on('error', () => {});
      req.write(Buffer.alloc(1000, 1));
      const status = await answerStatus(req);
      assert.equal(status, 400);
      assert.equal(fast.double.objects.get(bucket, 'stalled'), undefined);
    } finally {
      await strict.close();
    }
  });
});
