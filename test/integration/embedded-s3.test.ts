import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';

import { EmbeddedS3StartError, startEmbeddedS3, type EmbeddedS3 } from '../../src/embedded-s3.ts';

function clientFor(s3: EmbeddedS3): S3Client {
  return new S3Client({
    endpoint: s3.url,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startEmbeddedS3', () => {
  let dir: string;
  let s3: EmbeddedS3;
  let client: S3Client;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'embedded-s3-'));
    s3 = await startEmbeddedS3({ dir: join(dir, 'data') });
    client = clientFor(s3);
  });
  after(async () => {
    client?.destroy();
    await s3?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('listens on 127.0.0.1 on a free port with the embedded store credentials', () => {
    assert.match(s3.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(new URL(s3.url).port, '4568');
    assert.equal(s3.accessKeyId, 'EMBEDDED');
    assert.equal(s3.secretAccessKey, 'EMBEDDED');
    assert.equal(s3.region, 'us-east-1');
    assert.ok(isAlive(s3.pid));
  });

  it('creates a bucket, puts, gets, lists with pagination, and deletes', async () => {
    const Bucket = 'embedded-test';
    await client.send(new CreateBucketCommand({ Bucket }));
    await client.send(new HeadBucketCommand({ Bucket }));

    const keys = ['a/one.txt', 'a/two.txt', 'b/three.txt'];
    for (const Key of keys) {
      await client.send(new PutObjectCommand({ Bucket, Key, Body: `body of ${Key}`, ContentType: 'text/plain' }));
    }

    const got = await client.send(new GetObjectCommand({ Bucket, Key: 'a/two.txt' }));
    assert.equal(await got.Body?.transformToString(), 'body of a/two.txt');
    assert.equal(got.ContentType, 'text/plain');

    const ranged = await client.send(new GetObjectCommand({ Bucket, Key: 'a/two.txt', Range: 'bytes=0-3' }));
    assert.equal(ranged.$metadata.httpStatusCode, 206);
    assert.equal(await ranged.Body?.transformToString(), 'body');

    // Paged ListObjectsV2 (s3rver needed the OpenSSL legacy provider for its DES continuation tokens)
    const listed: string[] = [];
    let ContinuationToken: string | undefined;
    let pages = 0;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket, MaxKeys: 1, ContinuationToken }));
      pages++;
      for (const o of page.Contents ?? []) listed.push(o.Key ?? '');
      ContinuationToken = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      if (page.IsTruncated === true) assert.ok(ContinuationToken, 'truncated page without a continuation token');
    } while (ContinuationToken !== undefined && pages < 10);
    assert.deepEqual(listed, keys);
    assert.ok(pages >= 3, `expected at least 3 pages, got ${pages}`);

    const prefixed = await client.send(new ListObjectsV2Command({ Bucket, Prefix: 'a/', Delimiter: '/' }));
    assert.deepEqual(
      (prefixed.Contents ?? []).map((o) => o.Key),
      ['a/one.txt', 'a/two.txt'],
    );

    for (const Key of keys) await client.send(new DeleteObjectCommand({ Bucket, Key }));
    const empty = await client.send(new ListObjectsV2Command({ Bucket }));
    assert.equal(empty.KeyCount ?? 0, 0);
    await client.send(new DeleteBucketCommand({ Bucket }));
    await assert.rejects(client.send(new HeadBucketCommand({ Bucket })));
  });

  it('gives multipart objects "-N" ETags and answers suffix ranges as S3 does (what s3rver did not)', async () => {
    const Bucket = 'embedded-mp';
    await client.send(new CreateBucketCommand({ Bucket }));
    const part = Buffer.alloc(5 * 1024 * 1024, 7);
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: 'mp' }));
    const parts = [];
    for (const PartNumber of [1, 2]) {
      const body = PartNumber === 1 ? part : Buffer.from('tail');
      const { ETag } = await client.send(new UploadPartCommand({ Bucket, Key: 'mp', UploadId, PartNumber, Body: body }));
      parts.push({ ETag, PartNumber });
    }
    const done = await client.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'mp', UploadId, MultipartUpload: { Parts: parts } }));
    assert.match(done.ETag ?? '', /^"[0-9a-f]{32}-2"$/);
    const suffix = await client.send(new GetObjectCommand({ Bucket, Key: 'mp', Range: 'bytes=-6' }));
    assert.equal(suffix.ContentRange, `bytes ${part.length - 2}-${part.length + 3}/${part.length + 4}`);
    assert.equal(Buffer.from(await suffix.Body!.transformToByteArray()).toString('latin1'), '\x07\x07tail');
  });

  it('checks no signature (any key pair is accepted): the proxy in front is what authenticates clients', async () => {
    const other = new S3Client({ endpoint: s3.url, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: 'ANY', secretAccessKey: 'any' } });
    try {
      await other.send(new CreateBucketCommand({ Bucket: 'any-key-accepted' }));
      await other.send(new DeleteBucketCommand({ Bucket: 'any-key-accepted' }));
    } finally {
      other.destroy();
    }
  });
});

describe('startEmbeddedS3 lifecycle', () => {
  it('keeps data in dir across restarts, pre-creates buckets, and stop() ends the child', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'embedded-s3-life-'));
    try {
      const first = await startEmbeddedS3({ dir, buckets: ['pre-made'] });
      const c1 = clientFor(first);
      await c1.send(new PutObjectCommand({ Bucket: 'pre-made', Key: 'k', Body: 'persisted' }));
      c1.destroy();
      await first.stop();
      await first.stop(); // idempotent
      assert.equal(isAlive(first.pid), false);

      const second = await startEmbeddedS3({ dir, buckets: ['pre-made'] });
      const c2 = clientFor(second);
      try {
        const got = await c2.send(new GetObjectCommand({ Bucket: 'pre-made', Key: 'k' }));
        assert.equal(await got.Body?.transformToString(), 'persisted');
      } finally {
        c2.destroy();
        await second.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('honours an explicit port, and fails with the child output when the port is taken', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'embedded-s3-port-'));
    try {
      const first = await startEmbeddedS3({ dir });
      const port = Number(new URL(first.url).port);
      try {
        await assert.rejects(startEmbeddedS3({ dir, port }), (err: unknown) => {
          assert.ok(err instanceof EmbeddedS3StartError);
          assert.match(err.message, /EADDRINUSE/);
          return true;
        });
      } finally {
        await first.stop();
      }
      const again = await startEmbeddedS3({ dir, port });
      try {
        assert.equal(again.url, `http://127.0.0.1:${port}`);
      } finally {
        await again.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
