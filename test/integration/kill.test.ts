/**
 * Issue 11 item 7: the proxy process killed with SIGKILL (no drain, no cleanup) in the middle of an SSE-C upload,
 * over Ceph RGW. A single PUT cut by the kill is never stored (the store never received its last bytes), and the
 * previous version stays readable byte for byte; a multipart upload killed while its parts stream, or during its
 * Complete, leaves either the previous version or the whole new object — never a partial one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { startCli } from '../support/cli.ts';
import { bodyBytes, newKey, openSsecPut, rgwUpstream, sse, startTestProxy, type TestProxy, type UpstreamInfo } from '../support/proxy.ts';

const MiB = 1024 * 1024;
let up: UpstreamInfo;
let reader: TestProxy;
const bucket = `kill-${randomBytes(4).toString('hex')}`;
const key = newKey();

before(async () => {
  up = await rgwUpstream();
  reader = await startTestProxy(up);
  await reader.client().send(new CreateBucketCommand({ Bucket: bucket }));
});
after(async () => reader?.close());

/** What a fresh replica reads for `name` now. */
async function readBack(name: string): Promise<Buffer> {
  const got = await reader.client().send(new GetObjectCommand({ Bucket: bucket, Key: name, ...sse(key) }));
  return bodyBytes(got.Body);
}

test('SIGKILL in the middle of single SSE-C PUTs (at several points): nothing of them is stored, the previous version reads back whole', async () => {
  const previous = randomBytes(300_000);
  for (const [i, sentBeforeKill] of [1, 64 * 1024, 3 * MiB, 8 * MiB - 1].entries()) {
    const name = `single-${i}`;
    await reader.client().send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: previous, ...sse(key) }));
    const cli = await startCli(up);
    try {
      const req = await openSsecPut({ endpoint: `https://127.0.0.1:${cli.port}`, caPem: cli.caPem }, up, `/${bucket}/${name}`, key, 8 * MiB);
      await new Promise<void>((resolve) => req.write(randomBytes(sentBeforeKill), () => resolve()));
      await new Promise((r) => setTimeout(r, 300));
      cli.child.kill('SIGKILL');
      await new Promise((r) => cli.child.once('exit', r));
      req.destroy();
    } finally {
      await cli.stop();
    }
    assert.ok((await readBack(name)).equals(previous), `${name}: killed after ${sentBeforeKill} bytes`);
  }
});

test('SIGKILL while parts stream, and during Complete: the object is the previous version or the whole new one', async () => {
  const previous = randomBytes(200_000);
  const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(123_456)];
  const whole = Buffer.concat(parts);
  for (const when of ['parts', 'complete'] as const) {
    const name = `multipart-${when}`;
    await reader.client().send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: previous, ...sse(key) }));
    const cli = await startCli(up);
    try {
      const s3 = cli.client();
      const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: name, ...sse(key) }));
      const etags: Array<string | undefined> = [];
      for (const [i, Body] of parts.entries()) {
        if (when === 'parts' && i === 1) {
          // Kill while this part's body is on its way.
          const sending = s3.send(new UploadPartCommand({ Bucket: bucket, Key: name, UploadId: created.UploadId, PartNumber: 2, Body, ...sse(key) })).catch(() => undefined);
          await new Promise((r) => setTimeout(r, 20));
          cli.child.kill('SIGKILL');
          await sending;
          break;
        }
        etags.push((await s3.send(new UploadPartCommand({ Bucket: bucket, Key: name, UploadId: created.UploadId, PartNumber: i + 1, Body, ...sse(key) }))).ETag);
      }
      if (when === 'complete') {
        const completing = s3
          .send(
            new CompleteMultipartUploadCommand({
              Bucket: bucket,
              Key: name,
              UploadId: created.UploadId,
              MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
              ...sse(key),
            }),
          )
          .catch(() => undefined);
        await new Promise((r) => setTimeout(r, 5));
        cli.child.kill('SIGKILL');
        await completing;
      }
      await new Promise((r) => (cli.child.exitCode === null && cli.child.signalCode === null ? cli.child.once('exit', r) : r(undefined)));
    } finally {
      await cli.stop();
    }
    const got = await readBack(name);
    assert.ok(got.equals(previous) || got.equals(whole), `${name}: ${got.length} bytes, neither the previous version nor the whole new object`);
  }
});
