/**
 * CopyObject and UploadPartCopy with SSE-C over Ceph RGW: key changes without moving data, copy-to-self key
 * rotation, plain ↔ SSE-C, directives, conditionals, S3's refusals, and ranged part copies.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  bodyBytes,
  directClient,
  errorCode,
  logLine,
  newKey,
  rawRequest,
  rgwUpstream,
  sse,
  ssecHeaders,
  type SseKey,
  startTestProxy,
  type TestProxy,
  type UpstreamInfo,
} from '../support/proxy.ts';

const MiB = 1024 * 1024;
let up: UpstreamInfo;
let t: TestProxy;
let s3: S3Client;
const bucket = `copy-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

function copySse(k: SseKey) {
  return { CopySourceSSECustomerAlgorithm: 'AES256', CopySourceSSECustomerKey: k.b64, CopySourceSSECustomerKeyMD5: k.md5 };
}

async function read(key: string, k?: SseKey): Promise<Buffer> {
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...(k ? sse(k) : {}) }));
  return (await bodyBytes(got.Body));
}

async function status(key: string, k?: SseKey): Promise<number> {
  const r = await rawRequest(t, up, { method: 'HEAD', path: `/${bucket}/${key}`, headers: k ? ssecHeaders(k) : {} });
  return r.status;
}

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
  s3 = t.client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
});
after(async () => t?.close());

describe('CopyObject', () => {
  const k1 = newKey();
  const k2 = newKey();
  const data = randomBytes(3 * 65536 + 77);

  before(async () => {
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'src', Body: data, ContentType: 'text/x-src', Metadata: { a: '1' }, ...sse(k1) }),
    );
  });

  test('SSE-C → SSE-C with a new key: no body byte through the proxy; only the new key reads the copy', async () => {
    const n = t.logs.length;
    const r = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst', CopySource: `${bucket}/src`, ...copySse(k1), ...sse(k2) }));
    assert.equal(r.SSECustomerKeyMD5, k2.md5);
    const line = await logLine(t, n, 'CopyObject');
    assert.equal(line.upstreamBytesIn, 0);
    assert.equal(line.bytesIn, 0);
    assert.ok((line.bytesOut as number) < 1024, 'the CopyObjectResult only');
    assert.ok((await read('dst', k2)).equals(data));
    assert.equal(await status('dst', k1), 403);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'dst', ...sse(k2) }));
    assert.equal(head.ContentType, 'text/x-src');
    assert.deepEqual(head.Metadata, { a: '1' });
    assert.equal(head.ContentLength, data.length);
  });

  test('copy-to-self rotation: afterwards the old key gets 403 and the new key reads the same bytes', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'rotate', Body: data, Metadata: { keep: 'me' }, ...sse(k1) }));
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'rotate', CopySource: `${bucket}/rotate`, ...copySse(k1), ...sse(k2) }));
    assert.equal(await status('rotate', k1), 403);
    assert.ok((await read('rotate', k2)).equals(data));
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'rotate', ...sse(k2) }));
    assert.deepEqual(head.Metadata, { keep: 'me' });
  });

  test('copy-to-self with nothing changed → 400; REPLACE of the metadata is a change', async () => {
    await assert.rejects(
      s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'src', CopySource: `${bucket}/src`, ...copySse(k1), ...sse(k1) })),
      (e: Error) => e.name === 'InvalidRequest' && /copy an object to itself/.test(e.message),
    );
    await s3.send(
      new CopyObjectCommand({
        Bucket: bucket,
        Key: 'src',
        CopySource: `${bucket}/src`,
        MetadataDirective: 'REPLACE',
        Metadata: { b: '2' },
        ContentType: 'text/x-new',
        ...copySse(k1),
        ...sse(k1),
      }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'src', ...sse(k1) }));
    assert.deepEqual(head.Metadata, { b: '2' });
    assert.equal(head.ContentType, 'text/x-new');
    assert.ok((await read('src', k1)).equals(data));
  });

  test('plain → plain is the upstream\'s own copy', async () => {
    const body = randomBytes(5000);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'pp-src', Body: body, Metadata: { m: 'x' } }));
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'pp-dst', CopySource: `${bucket}/pp-src` }));
    assert.ok((await read('pp-dst')).equals(body));
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'pp-dst' }));
    assert.deepEqual(head.Metadata, { m: 'x' });
  });

  test('plain → SSE-C and SSE-C → plain stream through the proxy, byte-identical', async () => {
    const plain = randomBytes(100_000);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain', Body: plain }));
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'now-encrypted', CopySource: `${bucket}/plain`, ...sse(k1) }));
    assert.ok((await read('now-encrypted', k1)).equals(plain));
    assert.equal(await status('now-encrypted'), 400);
    const raw = await directClient(up).send(new GetObjectCommand({ Bucket: bucket, Key: 'now-encrypted' }));
    assert.ok(!(await bodyBytes(raw.Body)).includes(plain.subarray(0, 32)));
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'decrypted', CopySource: `${bucket}/now-encrypted`, ...copySse(k1) }));
    assert.ok((await read('decrypted')).equals(plain));
  });

  test('S3\'s refusals: wrong copy-source key 403, missing 400, bad MD5 400, SSE-C source headers on a plain source 400', async () => {
    const base = { method: 'PUT', path: `/${bucket}/refused`, headers: { 'x-amz-copy-source': `/${bucket}/src` } };
    const wrong = await rawRequest(t, up, { ...base, headers: { ...base.headers, ...ssecHeaders(k2, 'x-amz-copy-source-server-side-encryption-customer-') } });
    assert.equal(wrong.status, 403);
    const missing = await rawRequest(t, up, { ...base, headers: { ...base.headers, ...ssecHeaders(k2) } });
    assert.equal(missing.status, 400);
    const badMd5 = {
      ...ssecHeaders(k1, 'x-amz-copy-source-server-side-encryption-customer-'),
      'x-amz-copy-source-server-side-encryption-customer-key-md5': k2.md5,
    };
    const invalid = await rawRequest(t, up, { ...base, headers: { ...base.headers, ...badMd5, ...ssecHeaders(k1) } });
    assert.equal(invalid.status, 400);
    assert.equal(errorCode(invalid.body), 'InvalidArgument');
    const notApplicable = await rawRequest(t, up, {
      method: 'PUT',
      path: `/${bucket}/refused`,
      headers: { 'x-amz-copy-source': `/${bucket}/plain`, ...ssecHeaders(k1, 'x-amz-copy-source-server-side-encryption-customer-') },
    });
    assert.equal(notApplicable.status, 400);
    assert.equal(await status('refused', k1), 404);
  });

  test('tags follow the tagging directive (COPY by default) through a streamed copy; a missing source → 404', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tagged', Body: 'tagged body', Tagging: 'team=blue&env=test' }));
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'tagged-enc', CopySource: `${bucket}/tagged`, ...sse(k1) }));
    const tags = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tagged-enc' }));
    assert.deepEqual(Object.fromEntries((tags.TagSet ?? []).map((x) => [x.Key, x.Value])), { team: 'blue', env: 'test' });
    await s3.send(
      new CopyObjectCommand({ Bucket: bucket, Key: 'tagged-enc2', CopySource: `${bucket}/tagged`, TaggingDirective: 'REPLACE', Tagging: 'only=this', ...sse(k1) }),
    );
    const replaced = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tagged-enc2' }));
    assert.deepEqual(replaced.TagSet, [{ Key: 'only', Value: 'this' }]);
    await assert.rejects(
      s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'x', CopySource: `${bucket}/no-such-source`, ...copySse(k1), ...sse(k1) })),
      (e: Error) => e.name === 'NoSuchKey',
    );
  });

  test('x-amz-copy-source-if-match works with the ETag clients saw', async () => {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'src', ...sse(k1) }));
    await assert.rejects(
      s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'cond', CopySource: `${bucket}/src`, CopySourceIfMatch: '"00000000000000000000000000000000"', ...copySse(k1), ...sse(k2) })),
      (e: Error) => e.name === 'PreconditionFailed',
    );
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'cond', CopySource: `${bucket}/src`, CopySourceIfMatch: head.ETag, ...copySse(k1), ...sse(k2) }));
    assert.ok((await read('cond', k2)).equals(await read('src', k1)));
  });
});

describe('UploadPartCopy', () => {
  test('ranges of an SSE-C source and of a plain source become parts of an SSE-C upload (and of a plain one)', async () => {
    const k1 = newKey();
    const k2 = newKey();
    const a = randomBytes(6 * MiB + 5);
    const b = randomBytes(2 * MiB);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'part-src-enc', Body: a, ...sse(k1) }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'part-src-plain', Body: b }));
    for (const [dest, destKey] of [
      ['assembled-enc', k2],
      ['assembled-plain', undefined],
    ] as const) {
      const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: dest, ...(destKey ? sse(destKey) : {}) }));
      const p1 = await s3.send(
        new UploadPartCopyCommand({
          Bucket: bucket,
          Key: dest,
          UploadId: created.UploadId,
          PartNumber: 1,
          CopySource: `${bucket}/part-src-enc`,
          CopySourceRange: `bytes=1-${5 * MiB}`,
          ...copySse(k1),
          ...(destKey ? sse(destKey) : {}),
        }),
      );
      const p2 = await s3.send(
        new UploadPartCopyCommand({
          Bucket: bucket,
          Key: dest,
          UploadId: created.UploadId,
          PartNumber: 2,
          CopySource: `${bucket}/part-src-plain`,
          ...(destKey ? sse(destKey) : {}),
        }),
      );
      await s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: dest,
          UploadId: created.UploadId,
          MultipartUpload: {
            Parts: [
              { PartNumber: 1, ETag: p1.CopyPartResult!.ETag },
              { PartNumber: 2, ETag: p2.CopyPartResult!.ETag },
            ],
          },
        }),
      );
      const expected = Buffer.concat([a.subarray(1, 5 * MiB + 1), b]);
      assert.ok((await read(dest, destKey)).equals(expected), dest);
    }
  });

  test('a copy-source range beyond the source, or not of the form bytes=first-last → 400 InvalidArgument', async () => {
    const k = newKey();
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ranged-src', Body: randomBytes(1000), ...sse(k) }));
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'ranged-dst', ...sse(k) }));
    for (const range of ['bytes=0-1000', 'bytes=5-', 'bytes=-5']) {
      await assert.rejects(
        s3.send(
          new UploadPartCopyCommand({ Bucket: bucket, Key: 'ranged-dst', UploadId: created.UploadId, PartNumber: 1, CopySource: `${bucket}/ranged-src`, CopySourceRange: range, ...copySse(k), ...sse(k) }),
        ),
        (e: Error) => e.name === 'InvalidArgument',
        range,
      );
    }
  });

  test('a part copied under another key than the upload\'s → 400', async () => {
    const k = newKey();
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'small', Body: 'x', ...sse(k) }));
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mixed', ...sse(k) }));
    await assert.rejects(
      s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'mixed', UploadId: created.UploadId, PartNumber: 1, CopySource: `${bucket}/small`, ...copySse(k), ...sse(newKey()) })),
      (e: Error) => e.name === 'InvalidRequest',
    );
    // A plain part into this SSE-C upload is refused too.
    await assert.rejects(
      s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mixed', UploadId: created.UploadId, PartNumber: 1, Body: 'x' })),
      (e: Error) => e.name === 'InvalidRequest',
    );
  });
});

describe('copies above the single-copy limit, and re-encryption on key change', () => {
  let small: TestProxy;
  before(async () => {
    // A 5 MiB threshold so that the multipart copy path runs on small objects.
    small = await startTestProxy(up, { SSEC_PROXY_COPY_MULTIPART_THRESHOLD: String(5 * MiB) });
  });
  after(async () => small?.close());

  test('an upstream multipart copy keeps the encrypted layout readable (whole and ranged), no body bytes', async () => {
    const c = small.client();
    const k1 = newKey();
    const k2 = newKey();
    const data = randomBytes(19 * MiB + 99);
    await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'huge', Body: data, ...sse(k1) }));
    const n = small.logs.length;
    await c.send(new CopyObjectCommand({ Bucket: bucket, Key: 'huge-copy', CopySource: `${bucket}/huge`, ...copySse(k1), ...sse(k2) }));
    const line = await logLine(small, n, 'CopyObject');
    assert.equal(line.upstreamBytesIn, 0);
    assert.ok((line.upstreamRequests as number) >= 4, 'create, parts, complete');
    const fresh = await startTestProxy(up);
    try {
      const f = fresh.client();
      const whole = await f.send(new GetObjectCommand({ Bucket: bucket, Key: 'huge-copy', ...sse(k2) }));
      assert.ok((await bodyBytes(whole.Body)).equals(data));
      const ranged = await f.send(new GetObjectCommand({ Bucket: bucket, Key: 'huge-copy', Range: 'bytes=9000000-9000100', ...sse(k2) }));
      assert.ok((await bodyBytes(ranged.Body)).equals(data.subarray(9_000_000, 9_000_101)));
      const head = await f.send(new HeadObjectCommand({ Bucket: bucket, Key: 'huge-copy', ...sse(k2) }));
      assert.equal(head.ContentLength, data.length);
    } finally {
      await fresh.close();
    }
  });

  test('a multipart source with tail records and a composite checksum: the multipart copy keeps both', async () => {
    const c = small.client();
    const k1 = newKey();
    const k2 = newKey();
    const parts = [randomBytes(5 * MiB + 1), randomBytes(5 * MiB + 1), randomBytes(77_777)];
    const created = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp-src', ChecksumAlgorithm: 'CRC32', ...sse(k1) }));
    const done = [];
    for (const [i, body] of parts.entries()) {
      const r = await c.send(new UploadPartCommand({ Bucket: bucket, Key: 'mp-src', UploadId: created.UploadId!, PartNumber: i + 1, Body: body, ChecksumAlgorithm: 'CRC32', ...sse(k1) }));
      done.push({ PartNumber: i + 1, ETag: r.ETag!, ChecksumCRC32: r.ChecksumCRC32! });
    }
    const completed = await c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp-src', UploadId: created.UploadId!, MultipartUpload: { Parts: done }, ...sse(k1) }));
    await c.send(new CopyObjectCommand({ Bucket: bucket, Key: 'mp-copy', CopySource: `${bucket}/mp-src`, ...copySse(k1), ...sse(k2) }));
    const data = Buffer.concat(parts);
    const fresh = await startTestProxy(up);
    try {
      const f = fresh.client();
      const whole = await f.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp-copy', ChecksumMode: 'ENABLED', ...sse(k2) }));
      assert.equal(whole.ChecksumCRC32, completed.ChecksumCRC32);
      assert.ok((await bodyBytes(whole.Body)).equals(data));
      const ranged = await f.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp-copy', Range: `bytes=${5 * MiB - 10}-${5 * MiB + 10}`, ...sse(k2) }));
      assert.ok((await bodyBytes(ranged.Body)).equals(data.subarray(5 * MiB - 10, 5 * MiB + 11)));
      const part3 = await f.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp-copy', PartNumber: 3, ...sse(k2) }));
      assert.ok((await bodyBytes(part3.Body)).equals(parts[2]!));
    } finally {
      await fresh.close();
    }
  });

  test('with SSEC_PROXY_REENCRYPT_ON_KEY_CHANGE a key change re-encrypts under a fresh data key', async () => {
    const re = await startTestProxy(up, { SSEC_PROXY_REENCRYPT_ON_KEY_CHANGE: 'true' });
    try {
      const c = re.client();
      const k1 = newKey();
      const k2 = newKey();
      const data = randomBytes(200_000);
      await c.send(new PutObjectCommand({ Bucket: bucket, Key: 're-src', Body: data, ...sse(k1) }));
      const n = re.logs.length;
      await c.send(new CopyObjectCommand({ Bucket: bucket, Key: 're-dst', CopySource: `${bucket}/re-src`, ...copySse(k1), ...sse(k2) }));
      const line = await logLine(re, n, 'CopyObject');
      assert.ok((line.upstreamBytesIn as number) > data.length, 'the body went through the proxy');
      const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 're-dst', ...sse(k2) }));
      assert.ok((await bodyBytes(got.Body)).equals(data));
      // Fresh data key: the stored ciphertext shares nothing with the source's.
      const d = directClient(up);
      const a = await bodyBytes((await d.send(new GetObjectCommand({ Bucket: bucket, Key: 're-src' }))).Body);
      const b = await bodyBytes((await d.send(new GetObjectCommand({ Bucket: bucket, Key: 're-dst' }))).Body);
      assert.ok(!a.subarray(100, 200).equals(b.subarray(100, 200)));
    } finally {
      await re.close();
    }
  });
});
