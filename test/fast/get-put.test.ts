/**
 * SSE-C PutObject, GetObject and HeadObject through the proxy over the in-memory S3 double: round trip, ranges
 * around the 64 KiB chunk grid, what is at rest, S3's SSE-C refusals, and a tampered ciphertext byte.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { bodyBytes, newKey, sse } from '../support/proxy.ts';
import type { S3Double } from '../support/s3-double.ts';
import { rejectsWith, startFast, withMarker, type Fast } from './harness.ts';

/** The default chunk size (docs/FORMAT.md §3: chunkSizeLog2 16) and the per-chunk overhead (§5.2: 24 + 16). */
const C = 65536;
const OVERHEAD = 40;
const bucket = 'get-put';
const key = newKey();
const marker = randomBytes(32);
const n = 3 * C + 17;
const data = withMarker(randomBytes(n), marker, [0, C - 16, 2 * C + 100, n - 32]);

let fast: Fast;
let s3: S3Client;
let double: S3Double;
let putEtag: string | undefined;

before(async () => {
  fast = await startFast({ buckets: [bucket] });
  ({ s3, double } = fast);
  const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'obj', Body: data, Metadata: { colour: 'blue' }, ...sse(key) }));
  assert.equal(put.SSECustomerKeyMD5, key.md5);
  putEtag = put.ETag;
});
after(async () => fast?.close());

const get = (Range?: string, k = key, Key = 'obj') => s3.send(new GetObjectCommand({ Bucket: bucket, Key, ...(Range ? { Range } : {}), ...sse(k) }));

describe('round trip', () => {
  test('a whole GET returns the plaintext, its size, metadata and the PUT ETag', async () => {
    const got = await get();
    assert.equal(got.ContentLength, n);
    assert.equal(got.ETag, putEtag);
    assert.deepEqual(got.Metadata, { colour: 'blue' });
    assert.equal(got.SSECustomerKeyMD5, key.md5);
    assert.ok((await bodyBytes(got.Body)).equals(data));
  });

  test('HEAD shows the plaintext size, with or without a Range', async () => {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'obj', ...sse(key) }));
    assert.equal(head.ContentLength, n);
    assert.equal(head.ETag, putEtag);
    const ranged = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'obj', Range: 'bytes=10-19', ...sse(key) }));
    assert.equal(ranged.ContentLength, 10);
    assert.equal(ranged.ContentRange, `bytes 10-19/${n}`);
  });
});

describe('ranges', () => {
  const cases: Array<[string, string, number, number]> = [
    ['the first byte', 'bytes=0-0', 0, 0],
    ['the last byte', `bytes=${n - 1}-${n - 1}`, n - 1, n - 1],
    ['across the first chunk boundary', `bytes=${C - 10}-${C + 9}`, C - 10, C + 9],
    ['exactly the second chunk', `bytes=${C}-${2 * C - 1}`, C, 2 * C - 1],
    ['from a boundary to the end', `bytes=${2 * C}-`, 2 * C, n - 1],
    ['a suffix inside the last chunk', 'bytes=-10', n - 10, n - 1],
    ['a suffix across two chunks', `bytes=-${C}`, n - C, n - 1],
    ['an end past the object', `bytes=${n - 5}-${n + 1000}`, n - 5, n - 1],
  ];
  for (const [what, range, first, last] of cases) {
    test(`${what} (${range})`, async () => {
      const got = await get(range);
      assert.equal(got.$metadata.httpStatusCode, 206);
      assert.equal(got.ContentRange, `bytes ${first}-${last}/${n}`);
      assert.equal(got.ContentLength, last - first + 1);
      assert.ok((await bodyBytes(got.Body)).equals(data.subarray(first, last + 1)));
    });
  }

  test('a range starting past the end is S3\'s 416 InvalidRange', async () => {
    await rejectsWith(get(`bytes=${n}-`), 'InvalidRange', 416);
  });
});

test('at rest: ciphertext of the documented size, without the plaintext marker or key material', () => {
  const stored = double.objects.get(bucket, 'obj')!;
  assert.equal(stored.body.length, n + Math.ceil(n / C) * OVERHEAD); // docs/FORMAT.md §6.1
  assert.equal(stored.body.indexOf(marker), -1);
  assert.equal(stored.body.indexOf(marker.subarray(0, 16)), -1);
  const meta = JSON.stringify(stored.metadata);
  for (const secret of [key.b64, key.md5, key.raw.toString('hex'), key.raw.toString('base64url')]) assert.ok(!meta.includes(secret));
  assert.equal(stored.metadata.colour, 'blue');
});

describe('S3\'s SSE-C refusals', () => {
  test('another key: 403 AccessDenied on GET and HEAD', async () => {
    await rejectsWith(get(undefined, newKey()), 'AccessDenied', 403);
    await rejectsWith(get('bytes=0-0', newKey()), 'AccessDenied', 403);
    await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'obj', ...sse(newKey()) })), (e: S3ServiceException) => e.$metadata.httpStatusCode === 403);
  });

  test('no key on an encrypted object: 400 InvalidRequest', async () => {
    await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'obj' })), 'InvalidRequest', 400);
    await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'obj', Range: 'bytes=0-9' })), 'InvalidRequest', 400);
    await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'obj' })), (e: S3ServiceException) => e.$metadata.httpStatusCode === 400);
  });

  test('conditionals: If-None-Match on the ETag is 304, a wrong If-Match 412', async () => {
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'obj', IfNoneMatch: putEtag, ...sse(key) })), (e: S3ServiceException) => {
      return e.$metadata.httpStatusCode === 304;
    });
    await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'obj', IfMatch: '"0123"', ...sse(key) })), 'PreconditionFailed', 412);
  });
});

describe('a flipped ciphertext byte is never served as a whole 200', () => {
  /** What the client sees: an error answer, a body that fails or ends short, or the whole body. */
  async function outcome(p: Promise<{ Body?: unknown; $metadata: { httpStatusCode?: number } }>, whole: Buffer) {
    let got;
    try {
      got = await p;
    } catch (e) {
      return `error answer ${(e as S3ServiceException).$metadata?.httpStatusCode} ${(e as Error).name}`;
    }
    try {
      const body = await bodyBytes(got.Body);
      if (got.$metadata.httpStatusCode === 200 && body.equals(whole)) return 'whole body';
      return `short or wrong body (${body.length} of ${whole.length} bytes)`;
    } catch (e) {
      return `body failed: ${(e as Error).message}`;
    }
  }

  // Offsets in the stored ciphertext: chunk i starts at i·(C + 40); its header is 24 bytes, its tag the last 16.
  const spots: Array<[string, number]> = [
    ['in the first chunk\'s ciphertext', 24 + 5],
    ['in the second chunk\'s ciphertext', C + OVERHEAD + 24 + 1000],
    ['in the last chunk\'s tag', -1],
  ];
  for (const [where, offset] of spots) {
    test(where, async (t) => {
      const name = `tampered-${offset}`;
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: data, ...sse(key) }));
      const stored = double.objects.get(bucket, name)!;
      stored.body[offset < 0 ? stored.body.length + offset : offset]! ^= 0x01;
      const seen = await outcome(get(undefined, key, name), data);
      t.diagnostic(`whole GET: ${seen}`);
      assert.notEqual(seen, 'whole body');
      // A range over the tampered chunk fails too.
      const chunk = Math.floor((offset < 0 ? stored.body.length + offset : offset) / (C + OVERHEAD));
      const first = chunk * C;
      const last = Math.min(n, first + C) - 1;
      const part = data.subarray(first, last + 1);
      const ranged = await outcome(get(`bytes=${first}-${last}`, key, name), part);
      t.diagnostic(`GET of the tampered chunk: ${ranged}`);
      assert.notEqual(ranged, 'whole body');
    });
  }
});

describe('a tampered first chunk', () => {
  test('is answered with S3\'s 500 InternalError before any status line, whole and ranged (not a bare connection cut)', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'first-tampered', Body: data, ...sse(key) }));
    double.objects.get(bucket, 'first-tampered')!.body[24 + 5]! ^= 0x01;
    await rejectsWith(get(undefined, key, 'first-tampered'), 'InternalError', 500);
    await rejectsWith(get('bytes=0-99', key, 'first-tampered'), 'InternalError', 500);
  });
});
