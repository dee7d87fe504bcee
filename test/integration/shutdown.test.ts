/**
 * SIGTERM drains: the real CLI stops accepting, lets in-flight requests finish within the grace period, then
 * cuts what is left — and a cut SSE-C upload is never stored (the previous version survives).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { startCli } from '../support/cli.ts';
import { clientSigner, newKey, rgwUpstream, sse, ssecHeaders } from '../support/proxy.ts';

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
    const signer = clientSigner(up);
    const total = 2_000_000;
    const signed = await signer.sign({
      method: 'PUT',
      protocol: 'https:',
      hostname: '127.0.0.1',
      port,
      path: `/${bucket}/stalled`,
      query: {},
      headers: { host: `127.0.0.1:${port}`, 'content-length': String(total), 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...ssecHeaders(k) },
    });
    const stalled = new Promise<string>((resolve) => {
      const req = https.request({ host: '127.0.0.1', port, method: 'PUT', path: `/${bucket}/stalled`, headers: signed.headers, ca: cli.caPem, agent: false }, (res) => {
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
