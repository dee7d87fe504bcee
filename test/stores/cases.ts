/**
 * The store suite: the same cases through one proxy in front of each real S3 implementation (rgw.test.ts,
 * swift.test.ts). What the client sees is AWS S3's answer wherever the proxy can give it; where a store lacks
 * something the proxy cannot make up, the case asserts what the client sees there (docs/CLIENTS.md, "Stores").
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { createHmac, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { encryptedSize } from '../../src/format/layout.ts';
import {
  bodyBytes,
  directClient,
  errorCode,
  logLine,
  newKey,
  rawRequest,
  sse,
  ssecHeaders,
  startTestProxy,
  type SseKey,
  type TestProxy,
  type UpstreamInfo,
} from '../support/proxy.ts';

export interface StoreUnderTest {
  /** As the store matrix names it. */
  name: string;
  kind: 'rgw' | 'swift';
  upstream(): Promise<UpstreamInfo>;
}

const MiB = 1024 * 1024;
const C = 65536;

function copySse(k: SseKey) {
  return { CopySourceSSECustomerAlgorithm: 'AES256', CopySourceSSECustomerKey: k.b64, CopySourceSSECustomerKeyMD5: k.md5 };
}

export function storeSuite(store: StoreUnderTest): void {
  let up: UpstreamInfo;
  let t: TestProxy;
  let s3: S3Client;
  let direct: S3Client;
  const bucket = `store-${store.kind}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

  async function read(key: string, k?: SseKey, extra: { Range?: string } = {}): Promise<Buffer> {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...extra, ...(k ? sse(k) : {}) }));
    return bodyBytes(got.Body);
  }

  async function status(method: 'GET' | 'HEAD', key: string, headers: Record<string, string> = {}) {
    return rawRequest(t, up, { method, path: `/${bucket}/${key}`, headers });
  }

  before(async () => {
    up = await store.upstream();
    t = await startTestProxy(up);
    s3 = t.client();
    direct = directClient(up);
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });

  after(async () => {
    direct?.destroy();
    await t?.close();
  });

  describe(`${store.name}: SSE-C objects`, () => {
    const k = newKey();
    for (const n of [0, 1, C, 3 * C + 17]) {
      test(`PUT, GET, HEAD of ${n} bytes: byte-identical, plaintext size, ciphertext at rest`, async () => {
        const data = randomBytes(n);
        const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `rt/${n}`, Body: data, ...sse(k) }));
        assert.equal(put.SSECustomerKeyMD5, k.md5);
        assert.ok((await read(`rt/${n}`, k)).equals(data));
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `rt/${n}`, ...sse(k) }));
        assert.equal(head.ContentLength, n);
        assert.equal(head.ETag, put.ETag);
        assert.equal(head.SSECustomerKeyMD5, k.md5);
        const raw = await bodyBytes((await direct.send(new GetObjectCommand({ Bucket: bucket, Key: `rt/${n}` }))).Body);
        assert.equal(raw.length, encryptedSize(n, C));
        if (n >= 16) assert.equal(raw.indexOf(data.subarray(0, 16)), -1);
      });
    }

    test('ranges across chunk boundaries, open-ended and suffix ranges → 206 with the plaintext Content-Range; past the end → 416', async () => {
      const data = randomBytes(3 * C + 17);
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ranged', Body: data, ...sse(k) }));
      const cases: Array<[string, number, number]> = [
        ['bytes=0-0', 0, 0],
        [`bytes=${C - 1}-${C}`, C - 1, C],
        [`bytes=100-${2 * C + 5}`, 100, 2 * C + 5],
        [`bytes=${3 * C}-`, 3 * C, data.length - 1],
        ['bytes=-10', data.length - 10, data.length - 1],
        [`bytes=5-${10 * data.length}`, 5, data.length - 1],
      ];
      for (const [range, a, b] of cases) {
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ranged', Range: range, ...sse(k) }));
        assert.equal(got.$metadata.httpStatusCode, 206, range);
        assert.equal(got.ContentRange, `bytes ${a}-${b}/${data.length}`, range);
        assert.ok((await bodyBytes(got.Body)).equals(data.subarray(a, b + 1)), range);
      }
      const past = await status('GET', 'ranged', { ...ssecHeaders(k), range: `bytes=${data.length}-` });
      assert.equal(past.status, 416);
      assert.equal(errorCode(past.body), 'InvalidRange');
    });

    test('conditional GETs: If-Match → 200, If-None-Match → 304, another ETag → 412 PreconditionFailed', async () => {
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond', Body: 'conditional', ...sse(k) }));
      const ok = await status('GET', 'cond', { ...ssecHeaders(k), 'if-match': put.ETag! });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.toString(), 'conditional');
      assert.equal((await status('GET', 'cond', { ...ssecHeaders(k), 'if-none-match': put.ETag! })).status, 304);
      const other = await status('GET', 'cond', { ...ssecHeaders(k), 'if-match': '"0123456789abcdef0123456789abcdef"' });
      assert.equal(other.status, 412);
      assert.equal(errorCode(other.body), 'PreconditionFailed');
    });

    test('the wrong key → 403 AccessDenied on GET and HEAD, no key → 400, and no plaintext either way', async () => {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'locked', Body: 'secret text', ...sse(k) }));
      const wrong = await status('GET', 'locked', ssecHeaders(newKey()));
      assert.equal(wrong.status, 403);
      assert.equal(errorCode(wrong.body), 'AccessDenied');
      assert.equal(wrong.body.indexOf('secret'), -1);
      assert.equal((await status('HEAD', 'locked', ssecHeaders(newKey()))).status, 403);
      const none = await status('GET', 'locked');
      assert.equal(none.status, 400);
      assert.equal(errorCode(none.body), 'InvalidRequest');
    });

    test('keys with spaces, +, =, ~, %, unicode and slashes round-trip, and list as written', async () => {
      const names = ['odd/a b+c=d~e', 'odd/100% sure', 'odd/ünïcødé/日本', 'odd/semi;colon,comma'];
      for (const name of names) {
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: name, ...sse(k) }));
        assert.equal((await read(name, k)).toString(), name);
      }
      const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'odd/' }));
      assert.deepEqual((list.Contents ?? []).map((o) => o.Key).sort(), [...names].sort());
      assert.deepEqual((list.Contents ?? []).map((o) => o.Size), (list.Contents ?? []).map((o) => Buffer.byteLength(o.Key!)));
    });

    test('user metadata and Content-Type round-trip; the proxy\'s envelope is never shown', async () => {
      await s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: 'meta', Body: 'm', ContentType: 'text/x-test', Metadata: { colour: 'blue' }, ...sse(k) }),
      );
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'meta', ...sse(k) }));
      assert.equal(head.ContentType, 'text/x-test');
      assert.deepEqual(head.Metadata, { colour: 'blue' });
    });

    test('a user-metadata value of 300 bytes (AWS allows 2 KiB in all)', async () => {
      const put = s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'long-meta', Body: 'x', Metadata: { note: 'n'.repeat(300) }, ...sse(k) }));
      if (store.kind === 'swift') {
        // Swift caps each metadata value at 256 bytes and s3api answers 500; the proxy relays it, nothing is stored.
        await assert.rejects(put, (e: Error & { $metadata?: { httpStatusCode?: number } }) => e.name === 'InternalError' && e.$metadata?.httpStatusCode === 500);
        assert.equal((await status('HEAD', 'long-meta', ssecHeaders(k))).status, 404);
      } else {
        await put;
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'long-meta', ...sse(k) }));
        assert.equal(head.Metadata?.note, 'n'.repeat(300));
      }
    });
  });

  describe(`${store.name}: plain objects pass through`, () => {
    test('PUT, GET, ranged GET and HEAD without SSE-C; SSE-C headers on a plain object → 400 InvalidRequest', async () => {
      const data = randomBytes(1000);
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain', Body: data, ContentType: 'text/x-plain' }));
      assert.ok((await read('plain')).equals(data));
      assert.ok((await read('plain', undefined, { Range: 'bytes=-7' })).equals(data.subarray(993)));
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'plain' }));
      assert.equal(head.ContentLength, 1000);
      assert.equal(head.ContentType, 'text/x-plain');
      assert.ok((await bodyBytes((await direct.send(new GetObjectCommand({ Bucket: bucket, Key: 'plain' }))).Body)).equals(data), 'stored as sent');
      const r = await status('GET', 'plain', ssecHeaders(newKey()));
      assert.equal(r.status, 400);
      assert.equal(errorCode(r.body), 'InvalidRequest');
    });

    describe('parts and attributes of plain objects (the stores\' own answers would be wrong: see docs/CLIENTS.md)', () => {
      const single = randomBytes(1000);
      const parts = [randomBytes(5 * MiB), randomBytes(4321)];
      const whole = Buffer.concat(parts);
      before(async () => {
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain-single', Body: single }));
        const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'plain-mp' }));
        const done = [];
        for (const [i, body] of parts.entries()) {
          // The last part as a stream: the SDK sends it aws-chunked, which the proxy decodes (Swift would refuse it).
          const r = await s3.send(
            new UploadPartCommand({ Bucket: bucket, Key: 'plain-mp', UploadId: created.UploadId, PartNumber: i + 1, Body: i === 0 ? body : Readable.from([body]), ContentLength: body.length }),
          );
          done.push({ PartNumber: i + 1, ETag: r.ETag });
        }
        await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'plain-mp', UploadId: created.UploadId, MultipartUpload: { Parts: done } }));
      });

      test('?partNumber=1 is the whole object (206, its Content-Range, no PartsCount); N > 1 → 416 InvalidPartNumber, never another part\'s bytes', async () => {
        for (const [name, data] of [['plain-single', single], ['plain-mp', whole]] as const) {
          const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: name, PartNumber: 1 }));
          assert.equal(head.$metadata.httpStatusCode, 206, name);
          assert.equal(head.ContentLength, data.length);
          assert.equal(head.PartsCount, undefined);
          const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, PartNumber: 1 }));
          assert.equal(got.$metadata.httpStatusCode, 206, name);
          assert.equal(got.ContentRange, `bytes 0-${data.length - 1}/${data.length}`);
          assert.equal(got.PartsCount, undefined);
          assert.ok((await bodyBytes(got.Body)).equals(data), name);
          for (const method of ['GET', 'HEAD'] as const) {
            const r = await rawRequest(t, up, { method, path: `/${bucket}/${name}`, query: { partNumber: '2' } });
            assert.equal(r.status, 416, `${method} ${name}`);
            if (method === 'GET') assert.equal(errorCode(r.body), 'InvalidPartNumber');
          }
        }
      });

      test('GetObjectAttributes: size, ETag and storage class from the store; a multipart object\'s PartsCount (no Part list without checksums, as S3)', async () => {
        const a = await s3.send(
          new GetObjectAttributesCommand({ Bucket: bucket, Key: 'plain-single', ObjectAttributes: ['ObjectSize', 'ETag', 'StorageClass', 'ObjectParts'] }),
        );
        assert.equal(a.ObjectSize, single.length);
        assert.equal(a.StorageClass, 'STANDARD');
        assert.equal(a.ObjectParts, undefined, 'a single PUT has no parts');
        assert.equal(`"${a.ETag}"`, (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'plain-single' }))).ETag);
        const m = await s3.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: 'plain-mp', ObjectAttributes: ['ObjectSize', 'ETag', 'ObjectParts'] }));
        assert.equal(m.ObjectSize, whole.length);
        assert.equal(`"${m.ETag}"`, (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'plain-mp' }))).ETag);
        assert.equal(m.ObjectParts?.TotalPartsCount, 2);
        assert.equal(m.ObjectParts?.Parts, undefined);
        const missing = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/no-such-object`, query: { attributes: '' }, headers: { 'x-amz-object-attributes': 'ObjectSize' } });
        assert.equal(missing.status, 404);
        assert.equal(errorCode(missing.body), 'NoSuchKey');
      });
    });

    test('DeleteObject: SSE-C and plain objects are gone afterwards (404 NoSuchKey)', async () => {
      const k = newKey();
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'del-enc', Body: 'a', ...sse(k) }));
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'del-plain', Body: 'b' }));
      for (const [name, key] of [['del-enc', k], ['del-plain', undefined]] as const) {
        const del = await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: name }));
        assert.equal(del.$metadata.httpStatusCode, 204);
        const r = await status('GET', name, key ? ssecHeaders(key) : {});
        assert.equal(r.status, 404, name);
        assert.equal(errorCode(r.body), 'NoSuchKey');
      }
    });
  });

  describe(`${store.name}: aws-chunked bodies from the JS SDK (stream bodies: CRC32 trailer)`, () => {
    // The proxy decodes and checks aws-chunked itself and sends the store a plain body: RGW 16 refuses
    // trailers (400) and Swift refuses aws-chunked altogether (501).
    for (const encrypted of [true, false]) {
      test(`a streamed PutObject ${encrypted ? 'with' : 'without'} SSE-C round-trips and is stored without the framing`, async () => {
        const k = newKey();
        const data = randomBytes(300_000);
        const name = encrypted ? 'streamed-enc' : 'streamed-plain';
        const put = await s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: name,
            Body: Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]),
            ContentLength: data.length,
            ...(encrypted ? sse(k) : {}),
          }),
        );
        assert.ok(put.ChecksumCRC32, 'the SDK sent a CRC32 trailer and got it back');
        assert.ok((await read(name, encrypted ? k : undefined)).equals(data));
        const raw = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: name }));
        assert.equal(raw.ContentLength, encrypted ? encryptedSize(data.length, C) + 80 : data.length, 'one 80-byte tail record (the sealed CRC32) after the chunks');
        assert.notEqual(raw.ContentEncoding, 'aws-chunked');
      });
    }
  });

  describe(`${store.name}: @aws-sdk/lib-storage`, () => {
    test('Upload of a stream with SSE-C (5 MiB parts, CRC32 by default) round-trips; GET in checksum mode returns the composite CRC32', async () => {
      const k = newKey();
      const data = randomBytes(11 * MiB + 5);
      await new Upload({ client: s3, params: { Bucket: bucket, Key: 'lib-storage', Body: Readable.from([data]), ...sse(k) } }).done();
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'lib-storage', ChecksumMode: 'ENABLED', ...sse(k) }));
      assert.match(got.ChecksumCRC32 ?? '', /^[A-Za-z0-9+/]{6}==-3$/);
      assert.ok((await bodyBytes(got.Body)).equals(data));
    });
  });

  describe(`${store.name}: CopyObject`, () => {
    const k1 = newKey();
    const k2 = newKey();
    const data = randomBytes(3 * C + 77);

    test('SSE-C → SSE-C with a new key: no body byte through the proxy; only the new key reads the copy', async () => {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cp-src', Body: data, ContentType: 'text/x-src', Metadata: { a: '1' }, ...sse(k1) }));
      const n = t.logs.length;
      const r = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'cp-dst', CopySource: `${bucket}/cp-src`, ...copySse(k1), ...sse(k2) }));
      assert.equal(r.SSECustomerKeyMD5, k2.md5);
      assert.equal((await logLine(t, n, 'CopyObject')).upstreamBytesIn, 0);
      assert.ok((await read('cp-dst', k2)).equals(data));
      assert.equal((await status('HEAD', 'cp-dst', ssecHeaders(k1))).status, 403);
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'cp-dst', ...sse(k2) }));
      assert.equal(head.ContentType, 'text/x-src');
      assert.deepEqual(head.Metadata, { a: '1' });
      assert.equal(head.ContentLength, data.length);
      assert.ok((await read('cp-src', k1)).equals(data), 'the source is untouched');
    });

    test('copy-to-self rotation: the old key gets 403, the new key reads the same bytes and metadata', async () => {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'rotate', Body: data, Metadata: { keep: 'me' }, ...sse(k1) }));
      await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'rotate', CopySource: `${bucket}/rotate`, ...copySse(k1), ...sse(k2) }));
      assert.equal((await status('GET', 'rotate', ssecHeaders(k1))).status, 403);
      assert.ok((await read('rotate', k2)).equals(data));
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'rotate', ...sse(k2) }));
      assert.deepEqual(head.Metadata, { keep: 'me' });
    });
  });

  describe(`${store.name}: multipart upload with SSE-C`, () => {
    const k = newKey();
    const p1 = randomBytes(5 * MiB);
    const p2 = randomBytes(5 * MiB);
    const copySource = randomBytes(6 * MiB + 5);
    const copied = copySource.subarray(1, 5 * MiB + 1); // part 3, by UploadPartCopy from another SSE-C object
    const p4 = randomBytes(MiB + 12345);
    const whole = Buffer.concat([p1, p2, copied, p4]);
    const sizes = [p1.length, p2.length, copied.length, p4.length];
    let uploadId: string;
    let etag: string | undefined;

    before(async () => {
      const srcKey = newKey();
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'mp-copy-src', Body: copySource, ...sse(srcKey) }));
      const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp', ...sse(k) }));
      assert.equal(created.SSECustomerKeyMD5, k.md5);
      uploadId = created.UploadId!;
      const etags: string[] = [];
      for (const [n, body] of [[1, p1], [2, p2]] as const) {
        etags[n - 1] = (await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mp', UploadId: uploadId, PartNumber: n, Body: body, ...sse(k) }))).ETag!;
      }
      const pc = await s3.send(
        new UploadPartCopyCommand({
          Bucket: bucket,
          Key: 'mp',
          UploadId: uploadId,
          PartNumber: 3,
          CopySource: `${bucket}/mp-copy-src`,
          CopySourceRange: `bytes=1-${5 * MiB}`,
          ...copySse(srcKey),
          ...sse(k),
        }),
      );
      etags[2] = pc.CopyPartResult!.ETag!;
      // The last part as a stream: the SDK sends it aws-chunked, the proxy decodes it.
      etags[3] = (
        await s3.send(
          new UploadPartCommand({ Bucket: bucket, Key: 'mp', UploadId: uploadId, PartNumber: 4, Body: Readable.from([p4]), ContentLength: p4.length, ...sse(k) }),
        )
      ).ETag!;
    });

    test('ListParts shows the plaintext sizes and the client\'s upload id', async () => {
      const parts = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'mp', UploadId: uploadId, ...sse(k) }));
      assert.equal(parts.UploadId, uploadId);
      assert.deepEqual(parts.Parts?.map((p) => [p.PartNumber, p.Size]), sizes.map((s, i) => [i + 1, s]));
    });

    test('Complete answers a real …-4 ETag, equal to HEAD\'s; HEAD shows the plaintext size', async () => {
      const parts = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'mp', UploadId: uploadId, ...sse(k) }));
      const done = await s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: 'mp',
          UploadId: uploadId,
          MultipartUpload: { Parts: parts.Parts!.map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag })) },
        }),
      );
      etag = done.ETag;
      assert.match(etag ?? '', /^"[0-9a-f]{32}-4"$/);
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp', ...sse(k) }));
      assert.equal(head.ETag, etag);
      assert.equal(head.ContentLength, whole.length);
    });

    test('the whole object reads back byte-identical; ranges across part and chunk boundaries too', async () => {
      assert.ok((await read('mp', k)).equals(whole));
      for (const a of [0, C - 1, 5 * MiB - 1, 10 * MiB - 3, 15 * MiB, whole.length - 70000]) {
        const b = Math.min(a + 70000, whole.length - 1);
        assert.ok((await read('mp', k, { Range: `bytes=${a}-${b}` })).equals(whole.subarray(a, b + 1)), `bytes=${a}-${b}`);
      }
      assert.ok((await read('mp', k, { Range: 'bytes=-100' })).equals(whole.subarray(whole.length - 100)));
      assert.equal((await status('GET', 'mp', ssecHeaders(newKey()))).status, 403);
    });

    test('GET and HEAD ?partNumber=N: 206 with the part\'s plaintext range and PartsCount (the proxy answers, not the store)', async () => {
      let offset = 0;
      for (let i = 0; i < sizes.length; i++) {
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp', PartNumber: i + 1, ...sse(k) }));
        assert.equal(head.ContentLength, sizes[i]);
        assert.equal(head.PartsCount, sizes.length);
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp', PartNumber: i + 1, ...sse(k) }));
        assert.equal(got.ContentRange, `bytes ${offset}-${offset + sizes[i]! - 1}/${whole.length}`);
        assert.ok((await bodyBytes(got.Body)).equals(whole.subarray(offset, offset + sizes[i]!)), `part ${i + 1}`);
        offset += sizes[i]!;
      }
      const r = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/mp`, query: { partNumber: '5' }, headers: ssecHeaders(k) });
      assert.equal(r.status, 416);
      assert.equal(errorCode(r.body), 'InvalidPartNumber');
    });

    test('conditional GETs with the multipart ETag: If-Match → 200, If-None-Match → 304, another ETag → 412', async () => {
      const ok = await status('GET', 'mp', { ...ssecHeaders(k), 'if-match': etag!, range: 'bytes=0-9' });
      assert.equal(ok.status, 206);
      assert.ok(ok.body.equals(whole.subarray(0, 10)));
      assert.equal((await status('GET', 'mp', { ...ssecHeaders(k), 'if-none-match': etag! })).status, 304);
      const other = await status('GET', 'mp', { ...ssecHeaders(k), 'if-match': '"0123456789abcdef0123456789abcdef-4"' });
      assert.equal(other.status, 412);
      assert.equal(errorCode(other.body), 'PreconditionFailed');
    });

    test('GetObjectAttributes: plaintext ObjectSize and part sizes, the ETag without quotes', async () => {
      const attrs = await s3.send(
        new GetObjectAttributesCommand({ Bucket: bucket, Key: 'mp', ObjectAttributes: ['ObjectSize', 'ObjectParts', 'ETag'], ...sse(k) }),
      );
      assert.equal(attrs.ObjectSize, whole.length);
      assert.equal(attrs.ObjectParts?.TotalPartsCount, 4);
      assert.deepEqual(attrs.ObjectParts?.Parts?.map((p) => p.Size), sizes);
      assert.equal(`"${attrs.ETag}"`, etag);
    });
  });

  describe(`${store.name}: listings and presigned URLs`, () => {
    test('ListObjectsV2 shows plaintext sizes of SSE-C objects (single PUT and multipart) and plain ones', async () => {
      const k = newKey();
      const expected: Record<string, number> = { 'ls/enc-0': 0, 'ls/enc': 3 * C + 1, 'ls/plain': 777 };
      for (const [name, n] of Object.entries(expected)) {
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: randomBytes(n), ...(name.includes('enc') ? sse(k) : {}) }));
      }
      const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'ls/enc-mp', ...sse(k) }));
      const parts = [];
      for (const [n, size] of [[1, 5 * MiB], [2, 4321]] as const) {
        const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'ls/enc-mp', UploadId: created.UploadId, PartNumber: n, Body: randomBytes(size), ...sse(k) }));
        parts.push({ PartNumber: n, ETag: r.ETag });
      }
      await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'ls/enc-mp', UploadId: created.UploadId, MultipartUpload: { Parts: parts } }));
      expected['ls/enc-mp'] = 5 * MiB + 4321;
      // A fresh replica knows none of them: it must learn each size from the store.
      const fresh = await startTestProxy(up);
      try {
        for (const client of [s3, fresh.client()]) {
          const list = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'ls/' }));
          assert.deepEqual(Object.fromEntries((list.Contents ?? []).map((o) => [o.Key, o.Size])), expected);
        }
      } finally {
        await fresh.close();
      }
    });

    test('a presigned GET with the SSE-C headers signed reads the object; the key is not in the URL', async () => {
      const k = newKey();
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'presigned', Body: 'presigned body', ...sse(k) }));
      const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: 'presigned', ...sse(k) }), { expiresIn: 300 });
      assert.ok(!url.includes(encodeURIComponent(k.b64)) && !url.includes(k.b64));
      const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        https
          .get(url, { ca: t.caPem, headers: ssecHeaders(k) }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          })
          .on('error', reject);
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.body, 'presigned body');
    });
  });

  /**
   * Issue 12 on each store: what the store itself supports reaches the client as directly (anonymous access,
   * CORS rules, bucket policies: RGW has them, Swift's s3api answers its own refusal), and what the proxy does on
   * its own works on both (PostObject forms become PUTs; SSE-C conditions are the proxy's to enforce only where
   * the store keeps a policy).
   */
  describe('drop-in on this store', () => {
    /** A SigV4-signed browser form for `key` with the SSE-C trio as fields. */
    function signedForm(key: string, k: SseKey, file: Buffer) {
      const now = new Date();
      const day = now.toISOString().slice(0, 10).replace(/-/g, '');
      const amzDate = `${day}T${now.toISOString().slice(11, 19).replace(/:/g, '')}Z`;
      const credential = `${up.accessKeyId}/${day}/${up.region}/s3/aws4_request`;
      const fields: Record<string, string> = { key, ...ssecHeaders(k), 'x-amz-algorithm': 'AWS4-HMAC-SHA256', 'x-amz-credential': credential, 'x-amz-date': amzDate };
      const policy = Buffer.from(
        JSON.stringify({
          expiration: new Date(Date.now() + 600_000).toISOString(),
          conditions: [{ bucket }, ...Object.entries(fields).map(([n, v]) => ({ [n]: v }))],
        }),
      ).toString('base64');
      const hmac = (k2: Buffer | string, d: string) => createHmac('sha256', k2).update(d).digest();
      const signingKey = hmac(hmac(hmac(hmac(`AWS4${up.secretAccessKey}`, day), up.region), 's3'), 'aws4_request');
      Object.assign(fields, { policy, 'x-amz-signature': createHmac('sha256', signingKey).update(policy).digest('hex') });
      const boundary = `----store${randomBytes(6).toString('hex')}`;
      const head = Object.entries(fields).map(([n, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${n}"\r\n\r\n${v}\r\n`).join('');
      const body = Buffer.concat([Buffer.from(`${head}--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n`), file, Buffer.from(`\r\n--${boundary}--\r\n`)]);
      return { body, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
    }

    test('a signed PostObject form with SSE-C fields: 204, stored encrypted, read back with the key (the proxy writes it as a PUT)', async () => {
      const k = newKey();
      const file = randomBytes(30_000);
      const form = signedForm('posted.bin', k, file);
      const r = await rawRequest(t, up, { method: 'POST', path: `/${bucket}`, sign: false, headers: form.headers, body: form.body });
      assert.equal(r.status, 204, r.body.toString());
      assert.ok((await read('posted.bin', k)).equals(file));
      const stored = await bodyBytes((await direct.send(new GetObjectCommand({ Bucket: bucket, Key: 'posted.bin' }))).Body);
      assert.ok(stored.indexOf(file.subarray(0, 32)) < 0);
    });

    test('a bucket policy requiring SSE-C: RGW keeps it and the proxy enforces it; Swift answers NotImplemented, as directly', async () => {
      const Policy = JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Deny', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${bucket}/guarded/*`, Condition: { Null: { 's3:x-amz-server-side-encryption-customer-algorithm': 'true' } } }],
      });
      const put = await rawRequest(t, up, { method: 'PUT', path: `/${bucket}`, query: { policy: '' }, body: Policy });
      if (store.kind === 'swift') {
        assert.equal(put.status, 501);
        assert.equal(errorCode(put.body), 'NotImplemented');
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'guarded/plain', Body: 'no policy here' }));
        return;
      }
      assert.equal(put.status, 204, put.body.toString());
      try {
        const plain = await rawRequest(t, up, { method: 'PUT', path: `/${bucket}/guarded/plain`, body: 'refused' });
        assert.equal(plain.status, 403);
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'guarded/sealed', Body: 'ok', ...sse(newKey()) }));
      } finally {
        await rawRequest(t, up, { method: 'DELETE', path: `/${bucket}`, query: { policy: '' } });
      }
    });

    test('an anonymous GET of a public-read object: RGW serves it; Swift\'s s3api has no anonymous access and refuses, as directly', async () => {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'public.txt', Body: 'public', ACL: 'public-read' }));
      const r = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/public.txt`, sign: false });
      const straight = await fetch(`${up.endpoint}/${bucket}/public.txt`);
      assert.equal(r.status, straight.status, 'the proxy answers what the store answers directly');
      if (store.kind === 'rgw') assert.equal(r.body.toString(), 'public');
      else assert.ok(r.status >= 400);
    });
  });
}
