/**
 * ETags of encrypted objects as clients see them: never in the shape of a content MD5 (the store's is the MD5 of
 * the ciphertext), the same on every answer that names the object (PUT, HEAD, GET, listings warm and cold,
 * copies, attributes), and good for conditions (If-Match, If-None-Match, copy-source conditions). Plain objects
 * keep the store's ETag, the MD5 of their content.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { bodyBytes, copySourceSse, newKey, rawRequest, sse, ssecHeaders } from '../support/proxy.ts';
import { anotherProxy, rejectsWith, startFast, type Fast } from './harness.ts';

const bucket = 'etags';
const dir = mkdtempSync(join(tmpdir(), 'ssec-etag-'));
const keysFile = join(dir, 'keys.json');
writeFileSync(keysFile, JSON.stringify({ 'master-1': randomBytes(32).toString('base64') }));
const env = { SSEC_PROXY_KMS_LOCAL_KEYS: keysFile };
const key = newKey();
const body = randomBytes(70_000);
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
// rclone's test for an ETag it takes as the MD5 of the content (backend/s3 matchMd5).
const looksLikeMd5 = (etag: string | undefined) => /^[0-9a-f]{32}$/.test((etag ?? '').replace(/"/g, ''));

let fast: Fast;
let s3: S3Client;

before(async () => {
  fast = await startFast({ buckets: [bucket], env });
  s3 = fast.s3;
});
after(async () => fast?.close());

async function listedEtag(client: S3Client, Key: string): Promise<string | undefined> {
  const l = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: Key }));
  return l.Contents?.find((c) => c.Key === Key)?.ETag;
}

for (const [mode, write, read] of [
  ['SSE-C', sse(key), sse(key)],
  ['SSE-S3', { ServerSideEncryption: 'AES256' as const }, {}],
] as const) {
  describe(`${mode} single PUT`, () => {
    const Key = `single-${mode}`;
    let etag: string;

    test('PUT answers an ETag that is not an MD5 (not the content MD5, and not taken for one)', async () => {
      etag = (await s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: body, ...write }))).ETag!;
      assert.ok(!looksLikeMd5(etag), etag);
      assert.notEqual(etag.replace(/"/g, ''), md5(body));
      assert.match(etag, /^"[0-9a-f]{32}-0"$/);
    });

    test('HEAD, GET, a listing (warm, and from a replica that has seen nothing) and attributes say the same ETag', async () => {
      assert.equal((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key, ...read }))).ETag, etag);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key, ...read }));
      assert.equal(got.ETag, etag);
      assert.ok((await bodyBytes(got.Body)).equals(body));
      assert.equal(await listedEtag(s3, Key), etag);
      const cold = await anotherProxy(fast.double, env);
      try {
        assert.equal(await listedEtag(cold.s3, Key), etag);
      } finally {
        await cold.proxy.close();
      }
      const attrs = await s3.send(new GetObjectAttributesCommand({ Bucket: bucket, Key, ObjectAttributes: ['ETag'], ...read }));
      assert.equal(attrs.ETag, etag.replace(/"/g, ''));
    });

    test('conditions take the ETag as given: If-Match 200, If-None-Match 304, a stale one 412', async () => {
      const ranged = await s3.send(new GetObjectCommand({ Bucket: bucket, Key, Range: 'bytes=10-19', IfMatch: etag, ...read }));
      assert.ok((await bodyBytes(ranged.Body)).equals(body.subarray(10, 20)));
      await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: bucket, Key, IfNoneMatch: etag, ...read })), (e: { $metadata: { httpStatusCode?: number } }) => {
        assert.equal(e.$metadata.httpStatusCode, 304);
        return true;
      });
      const stale = `"${md5(Buffer.from('other'))}-0"`;
      await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key, IfMatch: stale, ...read })), 'PreconditionFailed', 412);
      // A 304 names the object as the client knows it (the store's 304 carries no metadata to tell).
      for (const method of ['HEAD', 'GET']) {
        const headers = { 'if-none-match': etag, ...(mode === 'SSE-C' ? ssecHeaders(key) : {}) };
        const r = await rawRequest(fast.proxy, fast.double, { method, path: `/${bucket}/${Key}`, headers });
        assert.equal(r.status, 304, method);
        assert.equal(r.headers['etag'], etag, method);
      }
    });

    test('a copy answers an encrypted ETag, and its source condition takes the ETag as given', async () => {
      const copied = await s3.send(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: `${Key}-copy`,
          CopySource: `${bucket}/${Key}`,
          CopySourceIfMatch: etag,
          ...(mode === 'SSE-C' ? copySourceSse(key) : {}),
          ...write,
        }),
      );
      const copyEtag = copied.CopyObjectResult!.ETag!;
      assert.match(copyEtag, /^"[0-9a-f]{32}-0"$/);
      assert.equal((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `${Key}-copy`, ...read }))).ETag, copyEtag);
      await rejectsWith(
        s3.send(
          new CopyObjectCommand({
            Bucket: bucket,
            Key: `${Key}-copy2`,
            CopySource: `${bucket}/${Key}`,
            CopySourceIfNoneMatch: etag,
            ...(mode === 'SSE-C' ? copySourceSse(key) : {}),
            ...write,
          }),
        ),
        'PreconditionFailed',
        412,
      );
    });
  });
}

test('a plain object keeps the store ETag, the MD5 of its content, everywhere', async () => {
  const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain', Body: body }));
  assert.equal(put.ETag, `"${md5(body)}"`);
  assert.equal((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'plain' }))).ETag, put.ETag);
  assert.equal(await listedEtag(s3, 'plain'), put.ETag);
  const r = await rawRequest(fast.proxy, fast.double, { method: 'HEAD', path: `/${bucket}/plain`, headers: { 'if-none-match': put.ETag! } });
  assert.equal(r.status, 304);
  assert.equal(r.headers['etag'], put.ETag);
});

test('an SSE-S3 source copied to a plain object: its source conditions hold', async () => {
  const etag = (await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond-src', Body: body, ServerSideEncryption: 'AES256' }))).ETag!;
  const copy = (c: Record<string, string>) => s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'cond-dst', CopySource: `${bucket}/cond-src`, ...c }));
  await rejectsWith(copy({ CopySourceIfNoneMatch: etag }), 'PreconditionFailed', 412);
  await rejectsWith(copy({ CopySourceIfMatch: `"${md5(Buffer.from('other'))}-0"` }), 'PreconditionFailed', 412);
  await copy({ CopySourceIfMatch: etag });
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'cond-dst' }));
  assert.equal(got.ServerSideEncryption, undefined);
  assert.ok((await bodyBytes(got.Body)).equals(body));
});

test('multipart: part ETags are not MD5s (ListParts says the same), Complete takes them, the object ETag is -N', async () => {
  const Key = 'mp';
  const parts = [randomBytes(5 * 1024 * 1024), randomBytes(1000)];
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key, ServerSideEncryption: 'AES256' }));
  const etags: string[] = [];
  for (const [i, Body] of parts.entries()) {
    const e = (await s3.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber: i + 1, Body }))).ETag!;
    assert.ok(!looksLikeMd5(e), e);
    assert.notEqual(e.replace(/"/g, '').replace(/-0$/, ''), md5(Body));
    etags.push(e);
  }
  const listed = await s3.send(new ListPartsCommand({ Bucket: bucket, Key, UploadId }));
  assert.deepEqual(listed.Parts?.map((p) => p.ETag), etags);
  const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key, UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
  assert.match(done.ETag!, /^"[0-9a-f]{32}-2"$/);
  assert.equal((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key }))).ETag, done.ETag);
  assert.equal(await listedEtag(s3, Key), done.ETag);
});
