/**
 * SSE-C multipart uploads through the proxy over the in-memory S3 double, with 4 KiB chunks (chunkSizeLog2 12)
 * and parts of 5 MiB + 1 byte, so no part boundary falls on the chunk grid: reads across part boundaries,
 * ListParts and listings with plaintext sizes, from the proxy that uploaded and from a cold one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { bodyBytes, newKey, sse, type TestProxy } from '../support/proxy.ts';
import { anotherProxy, rejectsWith, startFast, type Fast } from './harness.ts';

const MiB = 1024 * 1024;
const CHUNK = 4096;
const bucket = 'multipart';
const key = newKey();
const P = 5 * MiB + 1;
const parts = [randomBytes(P), randomBytes(P), randomBytes(777)];
const whole = Buffer.concat(parts);
const n = whole.length;

let fast: Fast;
let s3: S3Client;
let cold: { proxy: TestProxy; s3: S3Client };
let uploadId: string;
let etag: string | undefined;

before(async () => {
  fast = await startFast({ chunkSizeLog2: 12, buckets: [bucket] });
  s3 = fast.s3;
  const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp', Metadata: { kind: 'multipart' }, ...sse(key) }));
  uploadId = created.UploadId!;
  const etags = await Promise.all(
    parts.map(async (Body, i) => (await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mp', UploadId: uploadId, PartNumber: i + 1, Body, ...sse(key) }))).ETag),
  );
  // Asked before Complete: the parts as the client uploaded them.
  const listed = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'mp', UploadId: uploadId, ...sse(key) }));
  listedParts = listed.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag]);
  const done = await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: 'mp',
      UploadId: uploadId,
      MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      ...sse(key),
    }),
  );
  etag = done.ETag;
  partEtags = etags;
  cold = await anotherProxy(fast.double);
});
after(async () => {
  await cold?.proxy.close();
  await fast?.close();
});

let listedParts: Array<[number | undefined, number | undefined, string | undefined]> | undefined;
let partEtags: Array<string | undefined>;

test('ListParts shows each part\'s plaintext size and the ETag UploadPart answered', () => {
  assert.deepEqual(listedParts, parts.map((p, i) => [i + 1, p.length, partEtags[i]]));
});

test('the upstream holds one ciphertext of the three part streams, larger than the plaintext, under a multipart ETag', () => {
  const stored = fast.double.objects.get(bucket, 'mp')!;
  // docs/FORMAT.md §6.1 per part: P + 40·ceil(P / C), plus an 80-byte tail record (§5.6) per part when the
  // client sent part checksums (the SDK sends CRC32 by default).
  const chunks = parts.reduce((sum, p) => sum + p.length + 40 * Math.ceil(p.length / CHUNK), 0);
  assert.ok([chunks, chunks + 3 * 80].includes(stored.body.length), `${stored.body.length} vs ${chunks}`);
  assert.equal(stored.body.indexOf(parts[1]!.subarray(0, 32)), -1);
  assert.match(stored.etag, /-3"$/);
  assert.equal(etag, stored.etag);
});

describe('reads', () => {
  for (const [who, client] of [['the uploading proxy', () => s3], ['a cold proxy', () => cold.s3]] as const) {
    test(`${who}: HEAD and a whole GET`, async () => {
      const head = await client().send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp', ...sse(key) }));
      assert.equal(head.ContentLength, n);
      assert.equal(head.ETag, etag);
      const got = await client().send(new GetObjectCommand({ Bucket: bucket, Key: 'mp', ...sse(key) }));
      assert.equal(got.ContentLength, n);
      assert.deepEqual(got.Metadata, { kind: 'multipart' });
      assert.ok((await bodyBytes(got.Body)).equals(whole));
    });

    const ranges: Array<[string, number, number]> = [
      ['the first byte', 0, 0],
      ['across parts 1 and 2', P - 10, P + 9],
      ['the last byte of part 1 alone', P - 1, P - 1],
      ['the first byte of part 2 alone', P, P],
      ['exactly part 2', P, 2 * P - 1],
      ['across parts 2 and 3', 2 * P - CHUNK, 2 * P + 100],
      ['from inside part 1 to the end', P - 1, n - 1],
      ['the last byte', n - 1, n - 1],
    ];
    for (const [what, first, last] of ranges) {
      test(`${who}: ${what} (bytes=${first}-${last})`, async () => {
        const got = await client().send(new GetObjectCommand({ Bucket: bucket, Key: 'mp', Range: `bytes=${first}-${last}`, ...sse(key) }));
        assert.equal(got.ContentRange, `bytes ${first}-${last}/${n}`);
        assert.ok((await bodyBytes(got.Body)).equals(whole.subarray(first, last + 1)));
      });
    }

    test(`${who}: a suffix longer than the last part (bytes=-1000)`, async () => {
      const got = await client().send(new GetObjectCommand({ Bucket: bucket, Key: 'mp', Range: 'bytes=-1000', ...sse(key) }));
      assert.equal(got.ContentRange, `bytes ${n - 1000}-${n - 1}/${n}`);
      assert.ok((await bodyBytes(got.Body)).equals(whole.subarray(n - 1000)));
    });

    test(`${who}: another key is refused`, async () => {
      await rejectsWith(client().send(new GetObjectCommand({ Bucket: bucket, Key: 'mp', Range: 'bytes=0-0', ...sse(newKey()) })), 'AccessDenied', 403);
    });
  }
});

describe('a fresh proxy\'s first request is a ranged read', () => {
  const ranges: Array<[number, number]> = [
    [P - 10, P + 9],
    [2 * P - 1, 2 * P],
    [n - 1, n - 1],
  ];
  for (const [first, last] of ranges) {
    test(`bytes=${first}-${last}`, async () => {
      const fresh = await anotherProxy(fast.double);
      try {
        const got = await fresh.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp', Range: `bytes=${first}-${last}`, ...sse(key) }));
        assert.equal(got.ContentRange, `bytes ${first}-${last}/${n}`);
        assert.ok((await bodyBytes(got.Body)).equals(whole.subarray(first, last + 1)));
      } finally {
        await fresh.proxy.close();
      }
    });
  }
});

describe('listings show the plaintext size', () => {
  for (const [who, client] of [['the uploading proxy', () => s3], ['a cold proxy', () => cold.s3]] as const) {
    test(`${who}: ListObjectsV2 and ListObjects`, async () => {
      const v2 = await client().send(new ListObjectsV2Command({ Bucket: bucket }));
      assert.deepEqual(v2.Contents?.map((o) => [o.Key, o.Size, o.ETag]), [['mp', n, etag]]);
      const v1 = await client().send(new ListObjectsCommand({ Bucket: bucket }));
      assert.deepEqual(v1.Contents?.map((o) => [o.Key, o.Size]), [['mp', n]]);
    });
  }

  test('a fresh cold proxy lists the plaintext size before any read of the object', async () => {
    const fresh = await anotherProxy(fast.double);
    try {
      const v2 = await fresh.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'm' }));
      assert.equal(v2.Contents?.[0]?.Size, n);
    } finally {
      await fresh.proxy.close();
    }
  });
});

describe('a part uploaded again with the same bytes', () => {
  test('gets a new ETag (fresh ciphertext, as SSE-C ETags on AWS are not content MD5s); Complete takes the latest, the superseded one is S3\'s InvalidPart', async () => {
    const { UploadId } = await fast.s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'again', ...sse(key) }));
    const body = randomBytes(1000);
    const first = await fast.s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'again', UploadId, PartNumber: 1, Body: body, ...sse(key) }));
    const second = await fast.s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'again', UploadId, PartNumber: 1, Body: body, ...sse(key) }));
    assert.notEqual(first.ETag, second.ETag, 'one nonce is never used twice, so the same bytes encrypt differently');
    await rejectsWith(
      fast.s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'again', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: first.ETag }] }, ...sse(key) })),
      'InvalidPart',
      400,
    );
    await fast.s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'again', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: second.ETag }] }, ...sse(key) }));
    const got = await bodyBytes((await fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'again', ...sse(key) }))).Body);
    assert.ok(got.equals(body));
  });
});
