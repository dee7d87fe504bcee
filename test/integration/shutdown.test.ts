/**
 * SIGTERM drains: the real CLI stops accepting, lets in-flight requests finish within the grace period, then
 * cuts what is left — and a cut SSE-C upload is never stored (the previous version survives).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { startCli } from '../support/cli.ts';
import { newKey, openSsecPut, rgwUpstream, sse } from '../support/proxy.ts';

test('SIGTERM during a stalled upload: stops accepting, cuts it after the grace period, stores nothing of it', async () => {
  const up = await rgwUpstream();
  const cli = await startCli(up, { SSEC_PROXY_SHUTDOWN_GRACE_SECONDS: '2' });
  const { child, port } = cli;
  const s3 = cli.client();
  const bucket = `drain-${randomBytes(4).toString('hex')}`;
  const k = newKey();
  const previous = randomBytes(1000);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'stalled', Body: previous, ...sse(k) }));

    // A raw SSE-C upload that sends half its body and then stalls.
    const total = 2_000_000;
    const req = await openSsecPut({ endpoint: `https://127.0.0.1:${port}`, caPem: cli.caPem }, up, `/${bucket}/stalled`, k, total);
    const stalled = new Promise<string>((resolve) => {
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(`answered ${res.statusCode}`));
      });
      req.on('error', () => resolve('cut'));
      req.write(randomBytes(total / 2));
    });
    await new Promise((r) => setTimeout(r, 300));

    const t0 = Date.now();
    child.kill('SIGTERM');
    const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(Date.now() - t0)));
    assert.equal(await stalled, 'cut');
    const ms = await exited;
    assert.ok(ms >= 1500 && ms < 10_000, `exited after ${ms} ms (grace 2 s)`);
    assert.match(cli.output().toString(), /SIGTERM: closing listeners/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await cli.stop();
  }
  // The cut upload stored nothing: the previous version is intact (read through a fresh proxy).
  const { startTestProxy } = await import('../support/proxy.ts');
  const t = await startTestProxy(up);
  try {
    const got = await t.client().send(new GetObjectCommand({ Bucket: bucket, Key: 'stalled', ...sse(k) }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(previous));
  } finally {
    await t.close();
  }
});

test('SIGTERM with a client that connected and never started TLS: the process exits at once (nothing in flight)', async () => {
  const up = await rgwUpstream();
  const cli = await startCli(up, { SSEC_PROXY_SHUTDOWN_GRACE_SECONDS: '20' });
  const { child, port } = cli;
  const idle = net.connect(port, '127.0.0.1'); // never sends a ClientHello
  idle.on('error', () => {}); // the proxy resets it on shutdown
  try {
    await new Promise((r) => idle.once('connect', r));
    const t0 = Date.now();
    const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(Date.now() - t0)));
    child.kill('SIGTERM');
    const ms = await exited;
    assert.ok(ms < 3000, `exited after ${ms} ms (grace 20 s, nothing in flight)`);
  } finally {
    idle.destroy();
    if (child.exitCode === null) child.kill('SIGKILL');
    await cli.stop();
  }
});

test('SIGTERM during an in-flight request: /readyz answers not ready at once, and the process exits by the end of the grace period', async () => {
  const up = await rgwUpstream();
  const { freePort } = await import('../support/net.ts');
  const adminPort = await freePort();
  const cli = await startCli(up, { SSEC_PROXY_SHUTDOWN_GRACE_SECONDS: '2', SSEC_PROXY_ADMIN_LISTEN: `127.0.0.1:${adminPort}` });
  const { child, port } = cli;
  const readyz = () =>
    new Promise<number>((resolve) => {
      http.get({ host: '127.0.0.1', port: adminPort, path: '/readyz', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', () => resolve(0));
    });
  // A request that stays in flight: a signed SSE-C PUT whose body stops after one byte.
  const bucket = `drain2-${randomBytes(4).toString('hex')}`;
  await cli.client().send(new CreateBucketCommand({ Bucket: bucket }));
  const stalled = await openSsecPut({ endpoint: `https://127.0.0.1:${port}`, caPem: cli.caPem }, up, `/${bucket}/stalled`, newKey(), 1000);
  stalled.write('x');
  const idle = net.connect(port, '127.0.0.1'); // and a client that never starts TLS
  idle.on('error', () => {}); // the proxy resets it on shutdown
  try {
    await new Promise((r) => idle.once('connect', r));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await readyz(), 200);
    const t0 = Date.now();
    const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(Date.now() - t0)));
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await readyz(), 503, 'not ready as soon as shutdown starts');
    const ms = await exited;
    assert.ok(ms < 4500, `exited after ${ms} ms (grace 2 s)`);
  } finally {
    idle.destroy();
    stalled.destroy();
    if (child.exitCode === null) child.kill('SIGKILL');
    await cli.stop();
  }
});

test('a second SIGINT (Ctrl-C again) during the drain exits at once, cutting the stalled upload, which is not stored', async () => {
  const up = await rgwUpstream();
  const cli = await startCli(up, { SSEC_PROXY_SHUTDOWN_GRACE_SECONDS: '600' });
  const { child, port } = cli;
  const s3 = cli.client();
  const bucket = `sigint-${randomBytes(4).toString('hex')}`;
  const k = newKey();
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const total = 2_000_000;
    const req = await openSsecPut({ endpoint: `https://127.0.0.1:${port}`, caPem: cli.caPem }, up, `/${bucket}/stalled`, k, total);
    let flushed!: () => void;
    const written = new Promise<void>((resolve) => (flushed = resolve));
    const stalled = new Promise<string>((resolve) => {
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(`answered ${res.statusCode}`));
      });
      req.on('error', () => resolve('cut'));
      req.write(randomBytes(total / 2), () => flushed());
    });
    // The upload must be in flight at the proxy before the first SIGINT, or the drain has nothing to wait for and
    // exits 0 (seen once in a CI run): the half body is handed to the socket, then the proxy is given a moment.
    await written;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    await new Promise<void>((resolve) => {
      const check = () => (cli.output().toString().includes('SIGINT: closing listeners') ? resolve() : setTimeout(check, 20));
      check();
    });
    assert.match(cli.output().toString(), /Ctrl-C again to exit now/);
    child.kill('SIGINT');
    // With a 600 s grace, only the second SIGINT ends it: exit code 130, said on the way out.
    assert.equal(await exited, 130);
    assert.match(cli.output().toString(), /second SIGINT: exiting now/);
    assert.equal(await stalled, 'cut');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await cli.stop();
  }
  const { startTestProxy } = await import('../support/proxy.ts');
  const t = await startTestProxy(up);
  try {
    await assert.rejects(t.client().send(new GetObjectCommand({ Bucket: bucket, Key: 'stalled', ...sse(k) })), { name: 'NoSuchKey' });
  } finally {
    await t.close();
  }
});
