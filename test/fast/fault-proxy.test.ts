/**
 * Issue 11 item 7: a TCP fault proxy between the proxy and the store (the in-memory double) that resets or
 * stalls some connections, under a bounded mixed load of SSE-C PUTs and GETs (whole and ranged). Whatever
 * fails, no client ever accepts wrong or missing bytes: a GET either returns exactly the object's bytes or
 * fails; the proxy answers 5xx only as 503 (retryable) or its integrity error; once the faults stop, it serves
 * normally again.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { bodyBytes, newKey, sse, startTestProxy, type TestProxy } from '../support/proxy.ts';
import { startS3Double, type S3Double } from '../support/s3-double.ts';

/**
 * A TCP relay to `target` that, while `faulty`, resets the connection carrying every `resetEvery` bytes of
 * answers (the store's connections are kept alive, so faults follow bytes, not connections), and swallows
 * every `stallEvery`-th new connection (it never answers; closed after 0.3 s).
 */
async function startFaultProxy(target: URL, resetEvery: number, stallEvery: number) {
  let connections = 0;
  let relayed = 0;
  const state = { faulty: true, resets: 0, stalls: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (state.faulty && ++connections % stallEvery === 0) {
      state.stalls++;
      client.resume();
      setTimeout(() => client.destroy(), 300);
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    upstream.on('error', () => client.destroy());
    upstream.on('data', (c: Buffer) => {
      const before = Math.floor(relayed / resetEvery);
      relayed += c.length;
      if (state.faulty && Math.floor(relayed / resetEvery) > before) {
        state.resets++;
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      client.write(c);
    });
    upstream.on('end', () => client.end());
    client.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    state,
    close: () =>
      new Promise<void>((r) => {
        for (const sock of sockets) sock.destroy();
        server.close(() => r());
      }),
  };
}

let double: S3Double;
let faults: Awaited<ReturnType<typeof startFaultProxy>>;
let proxy: TestProxy;
let s3: S3Client;
const bucket = 'faulty';
const key = newKey();
const objects = new Map<string, Buffer>();

before(async () => {
  double = await startS3Double();
  faults = await startFaultProxy(new URL(double.endpoint), 400_000, 6);
  proxy = await startTestProxy({ ...double, endpoint: faults.endpoint });
  // One attempt per call: every fault reaches the test instead of being retried away.
  s3 = proxy.client();
  (s3.config as { maxAttempts?: () => Promise<number> }).maxAttempts = async () => 1;
  faults.state.faulty = false;
  await proxy.client().send(new (await import('@aws-sdk/client-s3')).CreateBucketCommand({ Bucket: bucket }));
  for (let i = 0; i < 6; i++) {
    const data = randomBytes(100_000 + i * 77_777);
    objects.set(`obj-${i}`, data);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `obj-${i}`, Body: data, ...sse(key) }));
  }
});
after(async () => {
  await proxy.close();
  await faults.close();
  await double.close();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('a store link that resets and stalls', () => {
  test('120 mixed operations: no wrong byte accepted, failures are 503s or cut reads, and the proxy recovers', async (t) => {
    faults.state.faulty = true;
    const outcomes = { ok: 0, failed: 0 };
    const statuses = new Map<string, number>();
    const names = [...objects.keys()];
    const work = Array.from({ length: 120 }, (_, i) => async () => {
      const name = names[i % names.length]!;
      const data = objects.get(name)!;
      try {
        if (i % 4 === 0) {
          // A PUT of new content: if it succeeds, that is the object now; if it fails, the old one stays.
          const next = randomBytes(data.length);
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: next, ...sse(key) }));
          objects.set(name, next);
        } else {
          const ranged = i % 3 === 0;
          const a = 1000;
          const b = Math.min(data.length - 1, 70_000);
          const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, ...(ranged ? { Range: `bytes=${a}-${b}` } : {}), ...sse(key) }));
          const bytes = await bodyBytes(got.Body);
          const current = objects.get(name)!;
          const want = ranged ? current.subarray(a, b + 1) : current;
          // Only exactly the object's bytes are ever accepted (a PUT racing this read may have replaced it).
          assert.ok(sha(bytes) === sha(want) || (!ranged && bytes.length === data.length && sha(bytes) === sha(data)), `${name}: wrong bytes accepted`);
        }
        outcomes.ok++;
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        outcomes.failed++;
        const status = e instanceof S3ServiceException ? String(e.$metadata.httpStatusCode) : (e as Error).name;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (e instanceof S3ServiceException) assert.ok(e.$metadata.httpStatusCode! < 500 || e.$metadata.httpStatusCode === 503 || e.message.includes('integrity'), `${e.name} ${e.$metadata.httpStatusCode}: ${e.message}`);
      }
    });
    // Four at a time, bounded.
    for (let i = 0; i < work.length; i += 4) await Promise.all(work.slice(i, i + 4).map((w) => w()));
    assert.ok(faults.state.resets + faults.state.stalls > 10, `faults injected: ${JSON.stringify(faults.state)}`);
    t.diagnostic(`faults ${JSON.stringify(faults.state)}, outcomes ${JSON.stringify(outcomes)}, failures ${JSON.stringify([...statuses])}`);
    assert.ok(outcomes.ok > 30, `${JSON.stringify(outcomes)} ${JSON.stringify([...statuses])}`);
    assert.ok(!proxy.logs.some((l) => l.status === 500 && l.level !== 'warn'), 'a 500 without its warning');
    // Faults off: every object reads back exactly as last written.
    faults.state.faulty = false;
    for (const [name, data] of objects) {
      const got = await proxy.client().send(new GetObjectCommand({ Bucket: bucket, Key: name, ...sse(key) }));
      assert.equal(sha(await bodyBytes(got.Body)), sha(data), name);
    }
  });
});
