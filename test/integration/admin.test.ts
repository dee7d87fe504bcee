/**
 * The admin listener: /healthz, /readyz (upstream reachable, credentials accepted) and Prometheus /metrics.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Metrics, startAdmin } from '../../src/admin.ts';
import { loadConfig } from '../../src/config.ts';
import { startProxy } from '../../src/server.ts';
import { ensureDevCertificate } from '../../src/tls/dev-cert.ts';
import { Upstream } from '../../src/upstream.ts';
import { newKey, rgwUpstream, sse } from '../support/proxy.ts';

test('healthz, readyz and metrics of requests, bytes, latency and the upstream', async () => {
  const up = await rgwUpstream();
  const dir = mkdtempSync(join(tmpdir(), 'ssec-admin-'));
  const cert = await ensureDevCertificate(dir);
  const config = loadConfig({
    env: {
      SSEC_PROXY_LISTEN: '127.0.0.1:0',
      SSEC_PROXY_UPSTREAM_URL: up.endpoint,
      SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: up.accessKeyId,
      SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: up.secretAccessKey,
    },
  });
  const metrics = new Metrics();
  const upstream = new Upstream(up.endpoint, up.region, { observer: metrics.upstreamObserver });
  const proxy = await startProxy({ config, upstream, tls: { cert: cert.certPem, key: cert.keyPem }, metrics, log: () => {} });
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, metrics, upstream, identity: up });
  const wrong = await startAdmin({ host: '127.0.0.1', port: 0, metrics, upstream, identity: { accessKeyId: up.accessKeyId, secretAccessKey: 'wrong' } });
  const get = async (port: number, path: string) => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: r.status, text: await r.text() };
  };
  const agent = new https.Agent({ ca: cert.caPem });
  const s3 = new S3Client({
    endpoint: `https://127.0.0.1:${proxy.httpsPort}`,
    region: up.region,
    forcePathStyle: true,
    credentials: { accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: agent }),
  });
  try {
    assert.deepEqual(await get(admin.port, '/healthz'), { status: 200, text: 'ok\n' });
    const ready = await get(admin.port, '/readyz');
    assert.equal(ready.status, 200, ready.text);
    const notReady = await get(wrong.port, '/readyz');
    assert.equal(notReady.status, 503);
    assert.match(notReady.text, /403/);
    const bucket = `admin-${randomBytes(4).toString('hex')}`;
    const k = newKey();
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'm', Body: randomBytes(1234), ...sse(k) }));
    await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'm', ...sse(k) }))).Body!.transformToByteArray();
    await new Promise((r) => setTimeout(r, 100));
    const m = await get(admin.port, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.text, /ssec_proxy_requests_total\{operation="PutObject",status="200"\} 1/);
    assert.match(m.text, /ssec_proxy_requests_total\{operation="GetObject",status="200"\} 1/);
    assert.match(m.text, /ssec_proxy_bytes_total\{direction="in"\} 1234/);
    assert.match(m.text, /ssec_proxy_request_duration_seconds_bucket\{le="\+Inf",operation="PutObject"\} 1/);
    // CreateBucket went through the pass-through, the object requests through the handlers: all counted.
    assert.match(m.text, /ssec_proxy_upstream_requests_total\{status="200"\} [3-9]/);
    assert.match(m.text, /ssec_proxy_inflight_requests 0/);
    assert.match(m.text, /ssec_proxy_process_resident_memory_bytes/);
    assert.match(m.text, /ssec_proxy_object_requests_total\{operation="PutObject",mode="sse-c"\} 1/);
    assert.match(m.text, /ssec_proxy_upload_slots_max 128/);
    assert.match(m.text, /ssec_proxy_connections_max 800/);
  } finally {
    s3.destroy();
    agent.destroy();
    await admin.close();
    await wrong.close();
    await proxy.close();
    await upstream.close();
    metrics.close();
  }
});

/**
 * A store that counts ListBuckets probes and answers each only when the test says: `release()` answers
 * every probe held so far; `hang` never answers.
 */
async function countingStore(opts: { hang?: boolean } = {}) {
  let probes = 0;
  const held: http.ServerResponse[] = [];
  let arrived: (() => void) | undefined;
  const server = http.createServer((req, res) => {
    probes++;
    req.resume();
    held.push(res);
    arrived?.();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    probes: () => probes,
    /** Resolves once a probe is waiting for its answer. */
    waiting: () => new Promise<void>((resolve) => (held.length && !opts.hang ? resolve() : (arrived = resolve))),
    release() {
      for (const res of held.splice(0)) {
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end('<ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>');
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

test('readyz: concurrent probes share one upstream request, its verdict is cached, a store that never answers is "not ready" in bounded time', async () => {
  const identity = { accessKeyId: 'AK', secretAccessKey: 'SK' };
  const store = await countingStore();
  const upstream = new Upstream(store.url, 'us-east-1');
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, metrics: new Metrics(), upstream, identity, readyCacheMs: 600_000 });
  const hanging = await countingStore({ hang: true });
  const hangingUpstream = new Upstream(hanging.url, 'us-east-1');
  const stuck = await startAdmin({ host: '127.0.0.1', port: 0, metrics: new Metrics(), upstream: hangingUpstream, identity, probeTimeoutMs: 300 });
  const readyz = async (port: number) => {
    const r = await fetch(`http://127.0.0.1:${port}/readyz`);
    return { status: r.status, text: await r.text() };
  };
  try {
    const probes = Array.from({ length: 8 }, () => readyz(admin.port));
    await store.waiting();
    // Give the other seven probes time to arrive while the first one's upstream request is held.
    await new Promise((r) => setTimeout(r, 200));
    store.release();
    for (const r of await Promise.all(probes)) assert.equal(r.status, 200, r.text);
    assert.equal(store.probes(), 1, 'one upstream request for eight concurrent probes');
    assert.equal((await readyz(admin.port)).status, 200);
    assert.equal(store.probes(), 1, 'a later probe answered from the cached verdict');

    const r = await readyz(stuck.port);
    assert.equal(r.status, 503);
    assert.match(r.text, /did not answer within 300 ms/);
  } finally {
    await admin.close();
    await stuck.close();
    await upstream.close();
    await hangingUpstream.close();
    await store.close();
    await hanging.close();
  }
});
