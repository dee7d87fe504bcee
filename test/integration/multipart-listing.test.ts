/**
 * SSE-C multipart uploads without state in the proxy, reads of multipart objects, and listings with plaintext
 * sizes, over Ceph RGW.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createChecksum } from '../../src/s3/checksums.ts';
import {
  bodyBytes as bytes,
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
const bucket = `mpu-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
  s3 = t.client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
});
after(async () => t?.close());

/** Uploads `parts` (part number → bytes) concurrently through the given clients, in the given order. */
async function multipart(clients: S3Client[], key: string, k: SseKey, parts: Array<[number, Buffer]>) {
  const created = await clients[0]!.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ...sse(k) }));
  assert.equal(created.SSECustomerKeyMD5, k.md5);
  const done = await Promise.all(
    parts.map(async ([n, body], i) => {
      const r = await clients[i % clients.length]!.send(
        new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, PartNumber: n, Body: body, ...sse(k) }),
      );
      return { PartNumber: n, ETag: r.ETag };
    }),
  );
  done.sort((a, b) => a.PartNumber - b.PartNumber);
  const completed = await clients[clients.length - 1]!.send(
    new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, MultipartUpload: { Parts: done } }),
  );
  return { uploadId: created.UploadId!, etag: completed.ETag };
}

describe('multipart with SSE-C', () => {
  const k = newKey();
  const p1 = randomBytes(5 * MiB);
  const p2 = randomBytes(5 * MiB);
  const p3 = randomBytes(MiB + 12345);
  const whole = Buffer.concat([p1, p2, p3]);
  let etag: string | undefined;

  before(async () => {
    // Parts sent concurrently and out of order; numbers need not start at 1 (minio-js starts at 2).
    ({ etag } = await multipart([s3], 'big', k, [
      [4, p3],
      [2, p1],
      [3, p2],
    ]));
  });

  test('Complete returns a real ETag (RGW 16 sends an empty one), equal to HEAD\'s', async () => {
    assert.match(etag ?? '', /^"[0-9a-f]{32}-3"$/);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'big', ...sse(k) }));
    assert.equal(head.ETag, etag);
    assert.equal(head.ContentLength, whole.length);
  });

  test('the whole object reads back byte-identical', async () => {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big', ...sse(k) }));
    assert.ok((await bytes(got.Body)).equals(whole));
  });

  test('ranged reads across part and chunk boundaries, one upstream request each', async () => {
    const boundaries = [0, 65535, 65536, 5 * MiB - 1, 5 * MiB, 10 * MiB - 3, 10 * MiB, whole.length - 1];
    for (const a of boundaries) {
      for (const len of [1, 70000]) {
        const b = Math.min(a + len - 1, whole.length - 1);
        const before = t.logs.length;
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big', Range: `bytes=${a}-${b}`, ...sse(k) }));
        assert.ok((await bytes(got.Body)).equals(whole.subarray(a, b + 1)), `bytes=${a}-${b}`);
        assert.equal((await logLine(t, before, 'GetObject')).upstreamRequests, 1);
      }
    }
    const tail = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big', Range: 'bytes=-100', ...sse(k) }));
    assert.ok((await bytes(tail.Body)).equals(whole.subarray(whole.length - 100)));
  });

  test('the wrong key cannot read it', async () => {
    const r = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/big`, headers: ssecHeaders(newKey()) });
    assert.equal(r.status, 403);
  });
});

describe('UploadPart rules', () => {
  test('another key, or none, on UploadPart → 400; ListParts shows plaintext sizes and the client\'s id; Abort', async () => {
    const k = newKey();
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'rules', ...sse(k) }));
    const id = created.UploadId!;
    const query = { partNumber: '1', uploadId: id };
    const other = await rawRequest(t, up, { method: 'PUT', path: `/${bucket}/rules`, query, headers: ssecHeaders(newKey()), body: 'x' });
    assert.equal(other.status, 400);
    assert.equal(errorCode(other.body), 'InvalidRequest');
    const none = await rawRequest(t, up, { method: 'PUT', path: `/${bucket}/rules`, query, body: 'x' });
    assert.equal(none.status, 400);
    // The upstream's bare id (as ListMultipartUploads shows it) cannot take SSE-C parts: the key is unknowable.
    const bare = { partNumber: '1', uploadId: id.replace(/\.ssec\d\..*$/, '') };
    const viaBare = await rawRequest(t, up, { method: 'PUT', path: `/${bucket}/rules`, query: bare, headers: ssecHeaders(k), body: 'x' });
    assert.equal(viaBare.status, 400);
    await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'rules', UploadId: id, PartNumber: 1, Body: randomBytes(123_456), ...sse(k) }));
    const parts = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'rules', UploadId: id, ...sse(k) }));
    assert.equal(parts.UploadId, id);
    assert.deepEqual(parts.Parts?.map((p) => [p.PartNumber, p.Size]), [[1, 123_456]]);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'rules', UploadId: id }));
    await assert.rejects(s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'rules', UploadId: id })), (e: Error) => e.name === 'NoSuchUpload');
  });
});

describe('no state in the proxy', () => {
  let second: TestProxy;
  before(async () => {
    second = await startTestProxy(up);
  });
  after(async () => second?.close());

  test('two proxies take the parts of one upload alternately', async () => {
    const k = newKey();
    const parts: Array<[number, Buffer]> = [1, 2, 3, 4].map((n) => [n, randomBytes(n === 4 ? 777 : 5 * MiB)]);
    await multipart([s3, second.client()], 'two-replicas', k, parts);
    const got = await second.client().send(new GetObjectCommand({ Bucket: bucket, Key: 'two-replicas', ...sse(k) }));
    assert.ok((await bytes(got.Body)).equals(Buffer.concat(parts.map(([, b]) => b))));
  });
});

describe('lib-storage and streamed bodies', () => {
  test('@aws-sdk/lib-storage Upload (5 MiB parts, CRC32 checksums by default) round-trips', async () => {
    const k = newKey();
    const data = randomBytes(12 * MiB + 5);
    await new Upload({ client: s3, params: { Bucket: bucket, Key: 'lib-storage', Body: Readable.from([data]), ...sse(k) } }).done();
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'lib-storage', ...sse(k) }));
    assert.ok((await bytes(got.Body)).equals(data));
  });

  test('a PutObject with a stream body (aws-chunked, CRC32 trailer) round-trips; aws-chunked is not stored', async () => {
    const k = newKey();
    const data = randomBytes(300_000);
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'streamed', Body: Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]), ContentLength: data.length, ...sse(k) }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'streamed', ...sse(k) }));
    assert.ok((await bytes(got.Body)).equals(data));
    assert.notEqual(got.ContentEncoding, 'aws-chunked');
    const raw = await directClient(up).send(new HeadObjectCommand({ Bucket: bucket, Key: 'streamed' }));
    assert.notEqual(raw.ContentEncoding, 'aws-chunked');
  });
});

describe('listings show plaintext sizes', () => {
  const lb = `list-${randomBytes(4).toString('hex')}`;
  const objects: Record<string, number> = {};
  before(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: lb }));
    const k = newKey();
    for (const [name, n, encrypted] of [
      ['enc-empty', 0, true],
      ['enc-small', 100, true],
      ['enc-chunky', 3 * 65536 + 1, true],
      ['plain-small', 100, false],
      ['plain-odd', 65_576, false],
      ['dir/enc', 5, true],
      ['sp ace&amp', 42, true],
    ] as const) {
      await s3.send(new PutObjectCommand({ Bucket: lb, Key: name, Body: randomBytes(n), ...(encrypted ? sse(k) : {}) }));
      objects[name] = n;
    }
    const parts: Array<[number, Buffer]> = [
      [1, randomBytes(5 * MiB)],
      [2, randomBytes(3333)],
    ];
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: lb, Key: 'enc-multipart', ...sse(k) }));
    const etags = [];
    for (const [n, body] of parts) {
      const r = await s3.send(new UploadPartCommand({ Bucket: lb, Key: 'enc-multipart', UploadId: created.UploadId, PartNumber: n, Body: body, ...sse(k) }));
      etags.push({ PartNumber: n, ETag: r.ETag });
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: lb, Key: 'enc-multipart', UploadId: created.UploadId, MultipartUpload: { Parts: etags } }));
    objects['enc-multipart'] = 5 * MiB + 3333;
    // Unaligned parts (5 MiB + 1 byte, as Ceph's s3-tests upload them): the listed size must still be exact.
    const odd = await s3.send(new CreateMultipartUploadCommand({ Bucket: lb, Key: 'enc-unaligned', ...sse(k) }));
    const oddEtags = [];
    for (const [n, size] of [
      [1, 5 * MiB + 1],
      [2, 5 * MiB + 1],
      [3, 1000],
    ] as const) {
      const r = await s3.send(new UploadPartCommand({ Bucket: lb, Key: 'enc-unaligned', UploadId: odd.UploadId, PartNumber: n, Body: randomBytes(size), ...sse(k) }));
      oddEtags.push({ PartNumber: n, ETag: r.ETag });
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: lb, Key: 'enc-unaligned', UploadId: odd.UploadId, MultipartUpload: { Parts: oddEtags } }));
    objects['enc-unaligned'] = 2 * (5 * MiB + 1) + 1000;
  });

  function sizes(list: Array<{ Key?: string; Size?: number }> | undefined) {
    return Object.fromEntries((list ?? []).map((c) => [c.Key, c.Size]));
  }

  test('ListObjectsV2 (also url-encoded, paginated) and ListObjects v1 agree with what was written', async () => {
    const before = t.logs.length;
    const v2 = await s3.send(new ListObjectsV2Command({ Bucket: lb }));
    assert.deepEqual(sizes(v2.Contents), objects);
    // Everything here was written through this replica (multipart objects learned at Complete): one request.
    assert.equal((await logLine(t, before, 'ListObjectsV2')).upstreamRequests, 1);
    const v1 = await s3.send(new ListObjectsCommand({ Bucket: lb }));
    assert.deepEqual(sizes(v1.Contents), objects);
    const paged: Record<string, number | undefined> = {};
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: lb, MaxKeys: 3, ContinuationToken: token, EncodingType: 'url' }));
      Object.assign(paged, sizes(page.Contents?.map((c) => ({ ...c, Key: decodeURIComponent(c.Key!.replace(/\+/g, ' ')) }))));
      token = page.NextContinuationToken;
    } while (token);
    assert.deepEqual(paged, objects);
  });

  test('a listing of objects this proxy wrote costs one upstream request; a fresh replica looks each up once', async () => {
    const before = t.logs.length;
    await s3.send(new ListObjectsV2Command({ Bucket: lb }));
    assert.equal((await logLine(t, before, 'ListObjectsV2')).upstreamRequests, 1);

    const fresh = await startTestProxy(up);
    try {
      const c = fresh.client();
      const first = await c.send(new ListObjectsV2Command({ Bucket: lb }));
      assert.deepEqual(sizes(first.Contents), objects);
      // Cold: the listing, one HEAD per object of 40 bytes or more, and one tail-record read per part of
      // each multipart object (2 + 3 parts).
      const cold = (await logLine(fresh, 0, 'ListObjectsV2')).upstreamRequests as number;
      // (Every object here is stored with 40 bytes or more, so none is ruled plain by size.)
      assert.equal(cold, 1 + Object.keys(objects).length + 5, `cold listing cost ${cold}`);
      const n = fresh.logs.length;
      await c.send(new ListObjectsV2Command({ Bucket: lb }));
      assert.equal((await logLine(fresh, n, 'ListObjectsV2')).upstreamRequests, 1);
    } finally {
      await fresh.close();
    }
  });
});

describe('GET and HEAD ?partNumber=N on SSE-C objects, as S3 answers them (RGW 16 ignores partNumber itself)', () => {
  const k = newKey();
  const sizes = [5 * MiB + 1, 5 * MiB + 1, 4321];
  const parts = sizes.map((n) => randomBytes(n));
  const whole = Buffer.concat(parts);
  const single = randomBytes(1000);
  before(async () => {
    await multipart([s3], 'parts', k, parts.map((b, i) => [i + 1, b] as [number, Buffer]));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'single', Body: single, ...sse(k) }));
  });

  test('each part of a multipart object: 206, its Content-Range and plaintext size, PartsCount', async () => {
    let offset = 0;
    for (let i = 0; i < parts.length; i++) {
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'parts', PartNumber: i + 1, ...sse(k) }));
      assert.equal(head.ContentLength, sizes[i]);
      assert.equal(head.PartsCount, parts.length);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'parts', PartNumber: i + 1, ...sse(k) }));
      assert.equal(got.ContentRange, `bytes ${offset}-${offset + sizes[i]! - 1}/${whole.length}`);
      assert.equal(got.PartsCount, parts.length);
      assert.ok((await bytes(got.Body)).equals(parts[i]!));
      offset += sizes[i]!;
    }
    const r = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/parts`, query: { partNumber: '4' }, headers: ssecHeaders(k) });
    assert.equal(r.status, 416);
    assert.equal(errorCode(r.body), 'InvalidPartNumber');
  });

  test('partNumber=1 of a single-part object is the whole object (206, no PartsCount); 2 → 416', async () => {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'single', PartNumber: 1, ...sse(k) }));
    assert.equal(got.ContentRange, `bytes 0-999/1000`);
    assert.equal(got.PartsCount, undefined);
    assert.ok((await bytes(got.Body)).equals(single));
    const r = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/single`, query: { partNumber: '2' }, headers: ssecHeaders(k) });
    assert.equal(r.status, 416);
  });
});

describe('versioned buckets', () => {
  test('every version keeps its own key; GET/HEAD ?versionId= and ListObjectVersions sizes are plaintext', async () => {
    const vb = `ver-${randomBytes(4).toString('hex')}`;
    await s3.send(new CreateBucketCommand({ Bucket: vb }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: vb, VersioningConfiguration: { Status: 'Enabled' } }));
    const k1 = newKey();
    const k2 = newKey();
    const v1 = randomBytes(1000);
    const v2 = randomBytes(70_000);
    const p1 = await s3.send(new PutObjectCommand({ Bucket: vb, Key: 'doc', Body: v1, ...sse(k1) }));
    const p2 = await s3.send(new PutObjectCommand({ Bucket: vb, Key: 'doc', Body: v2, ...sse(k2) }));
    assert.ok(p1.VersionId && p2.VersionId && p1.VersionId !== p2.VersionId);
    const g1 = await s3.send(new GetObjectCommand({ Bucket: vb, Key: 'doc', VersionId: p1.VersionId, ...sse(k1) }));
    assert.ok((await bytes(g1.Body)).equals(v1));
    const h1 = await s3.send(new HeadObjectCommand({ Bucket: vb, Key: 'doc', VersionId: p1.VersionId, ...sse(k1) }));
    assert.equal(h1.ContentLength, 1000);
    const latest = await s3.send(new GetObjectCommand({ Bucket: vb, Key: 'doc', Range: 'bytes=69990-', ...sse(k2) }));
    assert.ok((await bytes(latest.Body)).equals(v2.subarray(69_990)));
    const wrong = await rawRequest(t, up, { method: 'GET', path: `/${vb}/doc`, query: { versionId: p1.VersionId! }, headers: ssecHeaders(k2) });
    assert.equal(wrong.status, 403);
    const fresh = await startTestProxy(up);
    try {
      const versions = await fresh.client().send(new ListObjectVersionsCommand({ Bucket: vb }));
      const sizes = Object.fromEntries((versions.Versions ?? []).map((v) => [v.VersionId, v.Size]));
      assert.deepEqual(sizes, { [p1.VersionId]: 1000, [p2.VersionId]: 70_000 });
    } finally {
      await fresh.close();
    }
  });
});

describe('GetObjectAttributes on SSE-C objects', () => {
  test('plaintext ObjectSize and part sizes; the key is required, the wrong one refused', async () => {
    const k = newKey();
    const sizes = [5 * MiB + 1, 777];
    const parts = sizes.map((n) => randomBytes(n));
    await multipart([s3], 'attrs', k, parts.map((b, i) => [i + 1, b] as [number, Buffer]));
    const a = await s3.send(
      new GetObjectAttributesCommand({ Bucket: bucket, Key: 'attrs', ObjectAttributes: ['ObjectSize', 'ObjectParts', 'ETag', 'StorageClass'], ...sse(k) }),
    );
    assert.equal(a.ObjectSize, sizes[0]! + sizes[1]!);
    assert.equal(a.ObjectParts?.TotalPartsCount, 2);
    assert.deepEqual(a.ObjectParts?.Parts?.map((p) => p.Size), sizes);
    assert.match(a.ETag ?? '', /^[0-9a-f]{32}-2$/);
    await assert.rejects(
      s3.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: 'attrs', ObjectAttributes: ['ObjectSize'] })),
      (e: Error) => e.name === 'InvalidRequest',
    );
    await assert.rejects(
      s3.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: 'attrs', ObjectAttributes: ['ObjectSize'], ...sse(newKey()) })),
      (e: Error) => e.name === 'AccessDenied',
    );
  });
});

describe('multipart checksums (the parts\' digests live in their tail records)', () => {
  async function partCrc(name: 'crc32' | 'crc64nvme', data: Buffer): Promise<string> {
    const c = createChecksum(name);
    c.update(data);
    return c.digest();
  }

  test('COMPOSITE CRC32: Complete, GET/HEAD with checksum mode, a part read, GetObjectAttributes, another replica', async () => {
    const k = newKey();
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB + 1), randomBytes(1000)];
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'ck-composite', ChecksumAlgorithm: 'CRC32', ...sse(k) }));
    assert.equal(created.ChecksumAlgorithm, 'CRC32');
    assert.equal(created.ChecksumType, 'COMPOSITE');
    const id = created.UploadId!;
    // A part of another algorithm than the upload's is S3's type mismatch.
    const wrong = await rawRequest(t, up, {
      method: 'PUT',
      path: `/${bucket}/ck-composite`,
      query: { partNumber: '1', uploadId: id },
      headers: { ...ssecHeaders(k), 'x-amz-checksum-sha256': createHash('sha256').update(parts[0]!).digest('base64') },
      body: parts[0]!,
    });
    assert.equal(wrong.status, 400);
    assert.equal(errorCode(wrong.body), 'InvalidRequest');
    const done: Array<{ PartNumber: number; ETag: string; ChecksumCRC32: string }> = [];
    for (const [i, body] of parts.entries()) {
      if (i === 2) {
        // A composite needs every part's own checksum: a part without one is refused, as S3 refuses it.
        const r = await rawRequest(t, up, { method: 'PUT', path: `/${bucket}/ck-composite`, query: { partNumber: '3', uploadId: id }, headers: ssecHeaders(k), body });
        assert.equal(r.status, 400);
        assert.match(r.body.toString(), /expected checksum Type: crc32, actual checksum Type: null/);
      }
      const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'ck-composite', UploadId: id, PartNumber: i + 1, Body: body, ChecksumAlgorithm: 'CRC32', ...sse(k) }));
      assert.equal(r.ChecksumCRC32, await partCrc('crc32', body));
      done.push({ PartNumber: i + 1, ETag: r.ETag!, ChecksumCRC32: r.ChecksumCRC32! });
    }
    const expected = `${await partCrc('crc32', Buffer.concat(done.map((p) => Buffer.from(p.ChecksumCRC32, 'base64'))))}-3`;
    // A listed checksum that is not the part's → S3's InvalidPart, before anything is stored.
    const lying = done.map((p, i) => (i === 1 ? { ...p, ChecksumCRC32: done[0]!.ChecksumCRC32 } : p));
    await assert.rejects(
      s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'ck-composite', UploadId: id, MultipartUpload: { Parts: lying }, ...sse(k) })),
      (e: Error) => e.name === 'InvalidPart',
    );
    await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'ck-composite', ...sse(k) })), 'nothing stored');
    // Without the part checksums a composite upload cannot complete (and nothing is stored).
    await assert.rejects(
      s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'ck-composite', UploadId: id, MultipartUpload: { Parts: done.map(({ PartNumber, ETag }) => ({ PartNumber, ETag })) }, ...sse(k) })),
      (e: Error) => e.name === 'InvalidRequest',
    );
    const completed = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'ck-composite', UploadId: id, MultipartUpload: { Parts: done }, ...sse(k) }));
    assert.equal(completed.ChecksumCRC32, expected);
    assert.equal(completed.ChecksumType, 'COMPOSITE');

    const whole = Buffer.concat(parts);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ck-composite', ChecksumMode: 'ENABLED', ...sse(k) }));
    assert.equal(got.ChecksumCRC32, expected);
    assert.equal(got.ChecksumType, 'COMPOSITE');
    assert.ok((await bytes(got.Body)).equals(whole));
    const part2 = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ck-composite', PartNumber: 2, ChecksumMode: 'ENABLED', ...sse(k) }));
    assert.equal(part2.ChecksumCRC32, done[1]!.ChecksumCRC32);
    assert.ok((await bytes(part2.Body)).equals(parts[1]!));
    const ranged = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ck-composite', Range: 'bytes=5242870-5242900', ChecksumMode: 'ENABLED', ...sse(k) }));
    assert.equal(ranged.ChecksumCRC32, undefined, 'no whole-object checksum on a range');
    assert.ok((await bytes(ranged.Body)).equals(whole.subarray(5242870, 5242901)));
    const attrs = await s3.send(
      new GetObjectAttributesCommand({ Bucket: bucket, Key: 'ck-composite', ObjectAttributes: ['Checksum', 'ObjectParts', 'ObjectSize'], ...sse(k) }),
    );
    assert.equal(attrs.Checksum?.ChecksumCRC32, expected.replace(/-3$/, ''), 'GetObjectAttributes has no -N');
    assert.equal(attrs.Checksum?.ChecksumType, 'COMPOSITE');
    assert.deepEqual(attrs.ObjectParts?.Parts?.map((p) => [p.Size, p.ChecksumCRC32]), done.map((p, i) => [parts[i]!.length, p.ChecksumCRC32]));

    const other = await startTestProxy(up);
    try {
      const head = await other.client().send(new HeadObjectCommand({ Bucket: bucket, Key: 'ck-composite', ChecksumMode: 'ENABLED', ...sse(k) }));
      assert.equal(head.ChecksumCRC32, expected);
      assert.equal(head.ContentLength, whole.length);
      const listed = await other.client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'ck-composite' }));
      assert.equal(listed.Contents?.[0]?.Size, whole.length);
    } finally {
      await other.close();
    }
  });

  test('UploadPartCopy into a CRC32 upload answers the part\'s checksum, and Complete/GET agree', async () => {
    const k = newKey();
    const data = randomBytes(300_000);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ck-copy-src', Body: data }));
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'ck-copy', ChecksumAlgorithm: 'CRC32', ...sse(k) }));
    const copied = await s3.send(
      new UploadPartCopyCommand({ Bucket: bucket, Key: 'ck-copy', UploadId: created.UploadId!, PartNumber: 1, CopySource: `${bucket}/ck-copy-src`, CopySourceRange: 'bytes=1000-200999', ...sse(k) }),
    );
    const crc = await partCrc('crc32', data.subarray(1000, 201_000));
    assert.equal(copied.CopyPartResult?.ChecksumCRC32, crc);
    const parts = [{ PartNumber: 1, ETag: copied.CopyPartResult!.ETag!, ChecksumCRC32: crc }];
    const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'ck-copy', UploadId: created.UploadId!, MultipartUpload: { Parts: parts }, ...sse(k) }));
    const expected = `${await partCrc('crc32', Buffer.from(crc, 'base64'))}-1`;
    assert.equal(done.ChecksumCRC32, expected);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ck-copy', ChecksumMode: 'ENABLED', ...sse(k) }));
    assert.equal(got.ChecksumCRC32, expected);
    assert.ok((await bytes(got.Body)).equals(data.subarray(1000, 201_000)));
  });

  test('FULL_OBJECT CRC64NVME: the CRCs combine into the whole object\'s, which the SDK validates on GET', async () => {
    const k = newKey();
    const parts = [randomBytes(5 * MiB + 7), randomBytes(12_345)];
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'ck-full', ChecksumAlgorithm: 'CRC64NVME', ...sse(k) }));
    assert.equal(created.ChecksumType, 'FULL_OBJECT');
    const done = [];
    for (const [i, body] of parts.entries()) {
      if (i === 1) {
        // No checksum from the client: for a full-object checksum the proxy computes the part's, as S3 does.
        const r = await rawRequest(t, up, { method: 'PUT', path: `/${bucket}/ck-full`, query: { partNumber: '2', uploadId: created.UploadId! }, headers: ssecHeaders(k), body });
        assert.equal(r.status, 200);
        assert.equal(r.headers['x-amz-checksum-crc64nvme'], await partCrc('crc64nvme', body));
        done.push({ PartNumber: 2, ETag: String(r.headers['etag']), ChecksumCRC64NVME: String(r.headers['x-amz-checksum-crc64nvme']) });
        continue;
      }
      const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'ck-full', UploadId: created.UploadId!, PartNumber: i + 1, Body: body, ChecksumAlgorithm: 'CRC64NVME', ...sse(k) }));
      done.push({ PartNumber: i + 1, ETag: r.ETag!, ChecksumCRC64NVME: r.ChecksumCRC64NVME! });
    }
    const expected = await partCrc('crc64nvme', Buffer.concat(parts));
    const completed = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'ck-full', UploadId: created.UploadId!, MultipartUpload: { Parts: done }, ...sse(k) }));
    assert.equal(completed.ChecksumCRC64NVME, expected);
    assert.equal(completed.ChecksumType, 'FULL_OBJECT');
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ck-full', ChecksumMode: 'ENABLED', ...sse(k) }));
    assert.equal(got.ChecksumCRC64NVME, expected);
    assert.equal(got.ChecksumType, 'FULL_OBJECT');
    assert.ok((await bytes(got.Body)).equals(Buffer.concat(parts)));
  });
});

describe('tail records edited in the store', () => {
  test('a part size edited behind the proxy\'s back is refused on reads with the key (never shifted plaintext)', async () => {
    const k = newKey();
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB + 1), randomBytes(999)];
    await multipart([s3], 'edited', k, parts.map((b, i) => [i + 1, b] as [number, Buffer]));
    // Rewrite the stored object directly: same bytes and metadata, but the middle part's record claims one
    // byte less (its clear size field), as a store or an attacker with write access could.
    const direct = directClient(up);
    try {
      const raw = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: 'edited' }));
      const stored = Buffer.from(await raw.Body!.transformToByteArray());
      const lastRecord = stored.length - 80;
      const middleRecordEnd = lastRecord - (999 + 40); // the last part's stream: 999 bytes in one chunk
      const size = stored.readBigUInt64BE(middleRecordEnd - 80 + 4);
      assert.equal(size, BigInt(5 * MiB + 1), 'found the middle part\'s record');
      stored.writeBigUInt64BE(size - 1n, middleRecordEnd - 80 + 4);
      await direct.send(new PutObjectCommand({ Bucket: bucket, Key: 'edited', Body: stored, Metadata: raw.Metadata }));
    } finally {
      direct.destroy();
    }
    const fresh = await startTestProxy(up);
    try {
      const r = await rawRequest(fresh, up, { method: 'GET', path: `/${bucket}/edited`, headers: { ...ssecHeaders(k), range: 'bytes=11000000-11000100' } });
      assert.equal(r.status, 500);
      assert.equal(errorCode(r.body), 'InternalError');
      const whole = await rawRequest(fresh, up, { method: 'GET', path: `/${bucket}/edited`, headers: ssecHeaders(k) });
      assert.equal(whole.status, 500);
    } finally {
      await fresh.close();
    }
  });
});
