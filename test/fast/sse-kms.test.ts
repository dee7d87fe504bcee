/**
 * SSE-S3 and SSE-KMS through the proxy over the in-memory S3 double, with the `local` KMS: objects written
 * with `x-amz-server-side-encryption` (or by the bucket's default) are stored as ciphertext, read back with no
 * key (whole, ranges, parts, listings), copied between every pair of {plain, SSE-C, SSE-S3, SSE-KMS}; the store
 * never sees an `x-amz-server-side-encryption*` header; KMS failures are S3's answers.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetBucketEncryptionCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { bodyBytes, newKey, sse, type SseKey } from '../support/proxy.ts';
import { describeRequests, type S3Double } from '../support/s3-double.ts';
import { rejectsWith, startFast, upstreamOf, withMarker, type Fast } from './harness.ts';

const bucket = 'kms-objects';
const C = 65536;
const marker = randomBytes(32);
const dir = mkdtempSync(join(tmpdir(), 'ssec-kms-'));
const keysFile = join(dir, 'keys.json');
writeFileSync(
  keysFile,
  JSON.stringify({
    'master-1': randomBytes(32).toString('base64'),
    'team-key': randomBytes(32).toString('base64'),
    'off-key': { versions: [randomBytes(32).toString('base64')], disabled: true },
  }),
);

let fast: Fast;
let s3: S3Client;
let double: S3Double;

before(async () => {
  fast = await startFast({
    buckets: [bucket, 'kms-default', 'kms-team', 'kms-ssec-only', 'kms-required'],
    env: {
      SSEC_PROXY_KMS_LOCAL_KEYS: keysFile,
      SSEC_PROXY_BUCKET_ENCRYPTION: JSON.stringify({
        'kms-default': 'sse-s3',
        'kms-team': 'sse-kms:team-key',
        'kms-ssec-only': 'require-sse-c',
        'kms-required': 'require-encryption',
      }),
    },
  });
  ({ s3, double } = fast);
});
after(async () => fast?.close());

const read = async (Bucket: string, Key: string, extra: Record<string, unknown> = {}) =>
  bodyBytes((await s3.send(new GetObjectCommand({ Bucket, Key, ...extra }))).Body);

/** No request to the store carried an SSE-S3/KMS header (it would apply its own encryption). */
function assertNoSseHeaders(requests: Array<{ headers: Record<string, unknown> }>): void {
  for (const r of requests) {
    for (const h of Object.keys(r.headers)) assert.ok(!h.startsWith('x-amz-server-side-encryption'), `the store got ${h}`);
  }
}

/** The stored bytes do not contain the plaintext's marker: ciphertext at rest. */
function assertCiphertextAtRest(b: string, key: string, plain: Buffer): void {
  const stored = double.objects.get(b, key)!;
  assert.ok(stored.body.length > plain.length, 'stored bytes carry the format overhead');
  assert.equal(stored.body.indexOf(marker), -1, 'the plaintext marker is not in the stored bytes');
}

describe('SSE-S3 PutObject / GetObject / HeadObject', () => {
  const data = withMarker(randomBytes(3 * C + 17), marker, [0, C + 5]);

  test('stored encrypted, read back with no key, answered with S3 headers; the store never sees SSE headers', async () => {
    const requests = await upstreamOf(double, async () => {
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 's3.bin', Body: data, ServerSideEncryption: 'AES256' }));
      assert.equal(put.ServerSideEncryption, 'AES256');
    });
    assertNoSseHeaders(requests);
    assertCiphertextAtRest(bucket, 's3.bin', data);
    const stored = double.objects.get(bucket, 's3.bin')!;
    assert.match(stored.metadata['s3-ssec-proxy-kms']!, /^1;AES256;master-1;[A-Za-z0-9_-]+$/);

    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 's3.bin' }));
    assert.equal(got.ServerSideEncryption, 'AES256');
    assert.deepEqual(await bodyBytes(got.Body), data);
    assert.ok(!Object.keys(got.Metadata ?? {}).some((k) => k.startsWith('s3-ssec-proxy')), 'reserved metadata hidden');
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 's3.bin' }));
    assert.equal(head.ContentLength, data.length);
    assert.equal(head.ServerSideEncryption, 'AES256');
  });

  test('ranges and partNumber read plaintext with no key', async () => {
    const r = await read(bucket, 's3.bin', { Range: `bytes=${C - 3}-${C + 40}` });
    assert.deepEqual(r, data.subarray(C - 3, C + 41));
    const suffix = await read(bucket, 's3.bin', { Range: 'bytes=-10' });
    assert.deepEqual(suffix, data.subarray(data.length - 10));
    const part = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 's3.bin', PartNumber: 1 }));
    assert.deepEqual(await bodyBytes(part.Body), data);
  });

  test('GetObjectAttributes needs no key', async () => {
    const attrs = await s3.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: 's3.bin', ObjectAttributes: ['ObjectSize', 'ETag'] }));
    assert.equal(attrs.ObjectSize, data.length);
  });

  test('a listing shows the plaintext size', async () => {
    const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 's3.bin' }));
    assert.equal(list.Contents?.[0]?.Size, data.length);
  });

  test('SSE-C headers on an SSE-S3 object are S3\'s 400; an edited sealed key is refused, never served', async () => {
    await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 's3.bin', ...sse(newKey()) })), 'InvalidRequest', 400);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'moved.bin', Body: data, ServerSideEncryption: 'AES256' }));
    // The sealed key and envelope of one object put on another name: bound to their name, they do not open.
    const a = double.objects.get(bucket, 's3.bin')!;
    const b = double.objects.get(bucket, 'moved.bin')!;
    b.metadata = { ...a.metadata };
    b.body = Buffer.from(a.body);
    await rejectsWith(read(bucket, 'moved.bin'), 'KMS.InvalidCiphertextException', 400);
  });
});

describe('SSE-KMS', () => {
  const data = withMarker(randomBytes(C + 9), marker, [7]);
  const context = Buffer.from(JSON.stringify({ project: 'alpha' })).toString('base64');

  test('a named key and an encryption context: stored, echoed, read back', async () => {
    const put = await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'kms.bin', Body: data, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'team-key', SSEKMSEncryptionContext: context }),
    );
    assert.equal(put.ServerSideEncryption, 'aws:kms');
    assert.equal(put.SSEKMSKeyId, 'team-key');
    assertCiphertextAtRest(bucket, 'kms.bin', data);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'kms.bin' }));
    assert.equal(got.ServerSideEncryption, 'aws:kms');
    assert.equal(got.SSEKMSKeyId, 'team-key');
    assert.deepEqual(await bodyBytes(got.Body), data);
  });

  test('an unknown key id is KMS.NotFoundException, a disabled one KMS.DisabledException; nothing is stored', async () => {
    await rejectsWith(
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'nokey.bin', Body: data, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'no-such-key' })),
      'KMS.NotFoundException',
      400,
    );
    await rejectsWith(
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'nokey.bin', Body: data, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'off-key' })),
      'KMS.DisabledException',
      400,
    );
    assert.equal(double.objects.get(bucket, 'nokey.bin'), undefined);
  });

  test('an object whose master key is gone from the KMS is refused with the KMS\'s error', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'orphan.bin', Body: data, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'team-key' }));
    const stored = double.objects.get(bucket, 'orphan.bin')!;
    stored.metadata['s3-ssec-proxy-kms'] = stored.metadata['s3-ssec-proxy-kms']!.replace(';team-key;', ';gone-key;');
    await rejectsWith(read(bucket, 'orphan.bin'), 'KMS.NotFoundException', 400);
  });

  test('SSE-C together with SSE-KMS is S3\'s 400', async () => {
    await rejectsWith(
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'both.bin', Body: data, ServerSideEncryption: 'aws:kms', ...sse(newKey()) })),
      'InvalidArgument',
      400,
    );
  });
});

describe('SSE-S3 multipart', () => {
  const parts = [withMarker(randomBytes(5 * 1024 * 1024), marker, [3]), withMarker(randomBytes(C + 3), marker, [1])];
  const all = Buffer.concat(parts);

  test('parts need no key, the object reads whole, by range and by part', async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mpu.bin', ServerSideEncryption: 'AES256' }));
    const requests = await upstreamOf(double, async () => {
      const etags: string[] = [];
      for (const [i, Body] of parts.entries()) {
        const up = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mpu.bin', UploadId, PartNumber: i + 1, Body }));
        assert.equal(up.ServerSideEncryption, 'AES256');
        etags.push(up.ETag!);
      }
      const done = await s3.send(
        new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mpu.bin', UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
      );
      assert.equal(done.ServerSideEncryption, 'AES256');
    });
    assertNoSseHeaders(requests);
    assertCiphertextAtRest(bucket, 'mpu.bin', all);
    assert.deepEqual(await read(bucket, 'mpu.bin'), all);
    assert.deepEqual(await read(bucket, 'mpu.bin', { Range: `bytes=${parts[0]!.length - 5}-${parts[0]!.length + 5}` }), all.subarray(parts[0]!.length - 5, parts[0]!.length + 6));
    assert.deepEqual(await read(bucket, 'mpu.bin', { PartNumber: 2 }), parts[1]);
  });

  test('an SSE-C key on a part of an SSE-S3 upload is refused', async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mpu2.bin', ServerSideEncryption: 'AES256' }));
    await rejectsWith(s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mpu2.bin', UploadId, PartNumber: 1, Body: parts[1], ...sse(newKey()) })), 'InvalidRequest', 400);
  });

  test('UploadPartCopy from an SSE-KMS source into an SSE-S3 upload', async () => {
    const src = withMarker(randomBytes(C * 2), marker, [9]);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'pc-src.bin', Body: src, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'team-key' }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'pc.bin', ServerSideEncryption: 'AES256' }));
    const part = await s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'pc.bin', UploadId, PartNumber: 1, CopySource: `${bucket}/pc-src.bin` }));
    await s3.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'pc.bin', UploadId, MultipartUpload: { Parts: [{ ETag: part.CopyPartResult!.ETag!, PartNumber: 1 }] } }),
    );
    assert.deepEqual(await read(bucket, 'pc.bin'), src);
    assertCiphertextAtRest(bucket, 'pc.bin', src);
  });
});

describe('copies between plain, SSE-C, SSE-S3 and SSE-KMS', () => {
  const data = withMarker(randomBytes(2 * C + 11), marker, [50]);
  const k1: SseKey = newKey();
  const k2: SseKey = newKey();
  type Mode = 'plain' | 'ssec' | 'sse-s3' | 'sse-kms';
  const modes: Mode[] = ['plain', 'ssec', 'sse-s3', 'sse-kms'];
  const writeParams = (m: Mode, k: SseKey) =>
    m === 'ssec' ? sse(k) : m === 'sse-s3' ? { ServerSideEncryption: 'AES256' as const } : m === 'sse-kms' ? { ServerSideEncryption: 'aws:kms' as const, SSEKMSKeyId: 'team-key' } : {};
  const sourceParams = (m: Mode, k: SseKey) =>
    m === 'ssec' ? { CopySourceSSECustomerAlgorithm: 'AES256', CopySourceSSECustomerKey: k.b64, CopySourceSSECustomerKeyMD5: k.md5 } : {};

  for (const from of modes) {
    for (const to of modes) {
      test(`${from} → ${to}`, async () => {
        const src = `copy-${from}-${to}-src`;
        const dst = `copy-${from}-${to}-dst`;
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: src, Body: data, ...writeParams(from, k1) }));
        const requests = await upstreamOf(double, () =>
          s3.send(new CopyObjectCommand({ Bucket: bucket, Key: dst, CopySource: `${bucket}/${src}`, ...sourceParams(from, k1), ...writeParams(to, k2) })),
        );
        assertNoSseHeaders(requests);
        if (from !== 'plain' && to !== 'plain') {
          // Encrypted → encrypted: the envelope is re-sealed, the store copies the ciphertext (no body through the proxy).
          assert.ok(!requests.some((r) => r.op === 'GetObject' || r.op === 'PutObject'), describeRequests(requests));
        }
        assert.deepEqual(await read(bucket, dst, to === 'ssec' ? sse(k2) : {}), data);
        if (to !== 'plain') assertCiphertextAtRest(bucket, dst, data);
        else assert.deepEqual(double.objects.get(bucket, dst)!.body, data);
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: dst, ...(to === 'ssec' ? sse(k2) : {}) }));
        if (to === 'sse-s3') assert.equal(head.ServerSideEncryption, 'AES256');
        if (to === 'sse-kms') assert.equal(head.SSEKMSKeyId, 'team-key');
      });
    }
  }

  test('copying an SSE-S3 object onto itself with --sse re-wraps its key (rotation), no body moved', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'rotate.bin', Body: data, ServerSideEncryption: 'AES256' }));
    const before = double.objects.get(bucket, 'rotate.bin')!;
    const [body, meta] = [Buffer.from(before.body), before.metadata['s3-ssec-proxy-kms']];
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'rotate.bin', CopySource: `${bucket}/rotate.bin`, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'team-key' }));
    const after = double.objects.get(bucket, 'rotate.bin')!;
    assert.deepEqual(after.body, body, 'the ciphertext is unchanged');
    assert.notEqual(after.metadata['s3-ssec-proxy-kms'], meta);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'rotate.bin' }));
    assert.equal(got.SSEKMSKeyId, 'team-key');
    assert.deepEqual(await bodyBytes(got.Body), data);
  });
});

describe('bucket encryption policy', () => {
  const data = withMarker(randomBytes(1000), marker, [0]);

  test('sse-s3 and sse-kms buckets encrypt writes that name no encryption', async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: 'kms-default', Key: 'd.bin', Body: data }));
    assert.equal(put.ServerSideEncryption, 'AES256');
    assertCiphertextAtRest('kms-default', 'd.bin', data);
    assert.deepEqual(await read('kms-default', 'd.bin'), data);
    const team = await s3.send(new PutObjectCommand({ Bucket: 'kms-team', Key: 't.bin', Body: data }));
    assert.equal(team.SSEKMSKeyId, 'team-key');
    assertCiphertextAtRest('kms-team', 't.bin', data);
    // SSE-C still goes as asked.
    const k = newKey();
    await s3.send(new PutObjectCommand({ Bucket: 'kms-default', Key: 'c.bin', Body: data, ...sse(k) }));
    assert.deepEqual(await read('kms-default', 'c.bin', sse(k)), data);
  });

  test('require-sse-c and require-encryption refuse what they forbid with 403 AccessDenied', async () => {
    await rejectsWith(s3.send(new PutObjectCommand({ Bucket: 'kms-ssec-only', Key: 'x', Body: data })), 'AccessDenied', 403);
    await rejectsWith(s3.send(new PutObjectCommand({ Bucket: 'kms-ssec-only', Key: 'x', Body: data, ServerSideEncryption: 'AES256' })), 'AccessDenied', 403);
    await rejectsWith(s3.send(new CreateMultipartUploadCommand({ Bucket: 'kms-ssec-only', Key: 'x' })), 'AccessDenied', 403);
    await s3.send(new PutObjectCommand({ Bucket: 'kms-ssec-only', Key: 'x', Body: data, ...sse(newKey()) }));
    await rejectsWith(s3.send(new PutObjectCommand({ Bucket: 'kms-required', Key: 'y', Body: data })), 'AccessDenied', 403);
    await s3.send(new PutObjectCommand({ Bucket: 'kms-required', Key: 'y', Body: data, ServerSideEncryption: 'AES256' }));
    assertCiphertextAtRest('kms-required', 'y', data);
    assert.equal(double.objects.get('kms-ssec-only', 'x')!.metadata['s3-ssec-proxy-kms'], undefined);
  });

  test('GetBucketEncryption answers the configuration; PutBucketEncryption is refused', async () => {
    const d = await s3.send(new GetBucketEncryptionCommand({ Bucket: 'kms-default' }));
    assert.equal(d.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm, 'AES256');
    const t = await s3.send(new GetBucketEncryptionCommand({ Bucket: 'kms-team' }));
    assert.equal(t.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.KMSMasterKeyID, 'team-key');
    await rejectsWith(s3.send(new GetBucketEncryptionCommand({ Bucket: bucket })), 'ServerSideEncryptionConfigurationNotFoundError', 404);
    await rejectsWith(
      s3.send(
        new PutBucketEncryptionCommand({
          Bucket: bucket,
          ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        }),
      ),
      'NotImplemented',
      501,
    );
  });
});

describe('PostObject with x-amz-server-side-encryption', () => {
  test('a SigV2 form asking for SSE-S3 is stored encrypted, answered with its header, read with no key', async () => {
    const file = withMarker(randomBytes(3000), marker, [10]);
    const doc = { expiration: new Date(Date.now() + 3_600_000).toISOString(), conditions: [{ bucket }, { key: 'post.bin' }, { 'x-amz-server-side-encryption': 'AES256' }] };
    const policy = Buffer.from(JSON.stringify(doc)).toString('base64');
    const fields: Record<string, string> = {
      key: 'post.bin',
      AWSAccessKeyId: double.accessKeyId,
      policy,
      signature: createHmac('sha1', double.secretAccessKey).update(policy).digest('base64'),
      'x-amz-server-side-encryption': 'AES256',
    };
    const boundary = 'form' + randomBytes(6).toString('hex');
    const parts = Object.entries(fields).map(([n, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${n}"\r\n\r\n${v}\r\n`);
    const body = Buffer.concat([
      Buffer.from(parts.join('') + `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n`),
      file,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const url = new URL(fast.proxy.endpoint);
    const answer = await new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
      const req = https.request(
        { host: url.hostname, port: url.port, method: 'POST', path: `/${bucket}`, ca: fast.proxy.caPem, agent: false, headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(body.length) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(answer.status, 204);
    assert.equal(answer.headers['x-amz-server-side-encryption'], 'AES256');
    assertCiphertextAtRest(bucket, 'post.bin', file);
    assert.deepEqual(await read(bucket, 'post.bin'), file);
  });
});

describe('a KMS that cannot be reached', () => {
  test('is S3\'s retryable 503, and nothing is stored', async () => {
    const gone = join(dir, 'gone.json');
    writeFileSync(gone, JSON.stringify({ k: randomBytes(32).toString('base64') }));
    const other = await startFast({ buckets: ['kms-gone'], env: { SSEC_PROXY_KMS_LOCAL_KEYS: gone } });
    try {
      // The configuration checked the file at start; it is gone when the KMS is first needed.
      rmSync(gone);
      await rejectsWith(
        other.s3.send(new PutObjectCommand({ Bucket: 'kms-gone', Key: 'x', Body: 'data', ServerSideEncryption: 'AES256' })),
        'KMS.DependencyTimeoutException',
        503,
      );
      assert.equal(other.double.objects.get('kms-gone', 'x'), undefined);
    } finally {
      await other.close();
    }
  });
});
