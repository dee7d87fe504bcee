/**
 * Issue 11: a single-PUT object cut in the store at a chunk boundary looks like a shorter, valid object. The
 * client must never accept such a read as whole: not a whole GET, not a range touching the end, not through a
 * replica that has never seen the object (it trusts the stored size) nor through the one that wrote it (it
 * remembers the true size). With the SDK, a short body is a failed read.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { bodyBytes, newKey, sse } from '../support/proxy.ts';
import { anotherProxy, startFast, type Fast } from './harness.ts';

const C = 4096;
const F = C + 40;
const bucket = 'cut';
const key = newKey();
const data = randomBytes(6 * C + 123);

let fast: Fast;
const replicas: Array<Awaited<ReturnType<typeof anotherProxy>>> = [];

before(async () => {
  fast = await startFast({ chunkSizeLog2: 12, buckets: [bucket] });
});

after(async () => {
  for (const r of replicas) await r.proxy.close();
  await fast.close();
});

/** Writes the object through the proxy, then cuts it in the store after `chunks` whole chunks. */
async function cutObject(name: string, chunks: number): Promise<void> {
  await fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: data, ...sse(key) }));
  const stored = fast.double.objects.get(bucket, name)!;
  stored.body = stored.body.subarray(0, chunks * F);
}

/** The read either fails, or (never, if the proxy is right) yields fewer bytes than it announced. */
async function assertNeverWhole(s3: S3Client, name: string, range?: string): Promise<void> {
  await assert.rejects(async () => {
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, ...(range ? { Range: range } : {}), ...sse(key) }));
    const got = await bodyBytes(r.Body);
    // A body that arrived whole must be the object's true bytes.
    assert.ok(data.subarray(range ? data.length - got.length : 0).subarray(0, got.length).equals(got), 'wrong bytes');
    throw new Error(`accepted ${got.length} bytes as a whole body (announced ${r.ContentLength})`);
  }, (e: unknown) => !(e instanceof assert.AssertionError) && !String(e).includes('accepted'));
}

describe('a single PUT cut at a chunk boundary in the store', () => {
  for (const chunks of [1, 3, 6]) {
    test(`cut after ${chunks} chunk(s): a cold replica never delivers a whole GET or a range at the end`, async () => {
      const name = `cold-${chunks}`;
      await cutObject(name, chunks);
      const cold = await anotherProxy(fast.double);
      replicas.push(cold);
      await assertNeverWhole(cold.s3, name);
      const size = chunks * C;
      for (const range of ['bytes=-1', 'bytes=-100', `bytes=-${C + 1}`, `bytes=${size - 10}-`]) await assertNeverWhole(cold.s3, name, range);
    });

    test(`cut after ${chunks} chunk(s): the replica that wrote it never delivers either`, async () => {
      const name = `warm-${chunks}`;
      await cutObject(name, chunks);
      await assertNeverWhole(fast.s3, name);
      await assertNeverWhole(fast.s3, name, 'bytes=-100');
    });
  }

  test('an intact object reads back whole (the check above can pass)', async () => {
    await fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'intact', Body: data, ...sse(key) }));
    const cold = await anotherProxy(fast.double);
    replicas.push(cold);
    const r = await cold.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'intact', ...sse(key) }));
    assert.ok((await bodyBytes(r.Body)).equals(data));
  });
});
