/**
 * Client authentication at the proxy (before anything is forwarded), per-credential upstream identities, and
 * the pass-through of everything that is not SSE-C, over Ceph RGW.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { crc32 } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  clientSigner,
  errorCode,
  newKey,
  rawRequest,
  rgwUpstream,
  sse,
  ssecHeaders,
  startTestProxy,
  type TestProxy,
  type UpstreamInfo,
} from '../support/proxy.ts';

// A second RGW user created by scripts/start-rgw.sh (S3TESTS_USERS=1).
const ALT = { accessKeyId: '0555b35654ad1656d804', secretAccessKey: 'h7GhxuBLTrlhVUyxSPUKUV8r/2EI4ngqJxD7iBdBYLhwluN30JaT3Q==' };

let up: UpstreamInfo;
let t: TestProxy;
let s3: S3Client;
const bucket = `auth-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
  s3 = t.client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'obj', Body: 'data' }));
});
after(async () => t?.close());

describe('client SigV4 verification', () => {
  test('a wrong secret → 403 SignatureDoesNotMatch, nothing forwarded', async () => {
    const before = t.logs.length;
    const r = await rawRequest(t, { ...up, secretAccessKey: 'wrong-secret' }, { method: 'GET', path: `/${bucket}/obj` });
    assert.equal(r.status, 403);
    assert.equal(errorCode(r.body), 'SignatureDoesNotMatch');
    assert.equal(t.logs.slice(before).find((l) => l.status === 403)?.upstreamRequests, 0);
  });

  test('an unknown access key → 403 InvalidAccessKeyId', async () => {
    const r = await rawRequest(t, { ...up, accessKeyId: 'AKIDUNKNOWN0000000' }, { method: 'GET', path: `/${bucket}/obj` });
    assert.equal(r.status, 403);
    assert.equal(errorCode(r.body), 'InvalidAccessKeyId');
  });

  test('a clock 16 minutes off → 403 RequestTimeTooSkewed; 10 minutes is fine', async () => {
    const skewed = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/obj`, signingDate: new Date(Date.now() - 16 * 60_000) });
    assert.equal(skewed.status, 403);
    assert.equal(errorCode(skewed.body), 'RequestTimeTooSkewed');
    const ok = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/obj`, signingDate: new Date(Date.now() - 10 * 60_000) });
    assert.equal(ok.status, 200);
  });

  test('a tampered signed header → 403; an unsigned request → 403 AccessDenied', async () => {
    const key = newKey();
    const r = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/obj`, headers: { 'x-amz-meta-a': '1' } });
    assert.equal(r.status, 200);
    const anon = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/obj`, sign: false });
    assert.equal(anon.status, 403);
    assert.equal(errorCode(anon.body), 'AccessDenied');
    void key;
  });

  /** The SDK's own presigner, as an application would call it. */
  async function presign(key: ReturnType<typeof newKey>, expiresIn: number, signingDate: Date) {
    return getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: 'presigned', ...sse(key) }), {
      expiresIn,
      signingDate,
    });
  }

  function fetchCA(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      https
        .get(url, { ca: t.caPem, headers }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
  }

  test('presigned GET with SSE-C in the signed headers works; an expired one → 403 AccessDenied', async () => {
    const key = newKey();
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'presigned', Body: 'presigned body', ...sse(key) }));
    const good = await presign(key, 300, new Date());
    assert.ok(!good.includes(key.b64) && !good.includes(encodeURIComponent(key.b64)), 'the key is not in the URL');
    const ok = await fetchCA(good, ssecHeaders(key));
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.body, 'presigned body');
    const expired = await presign(key, 60, new Date(Date.now() - 120_000));
    const r = await fetchCA(expired, ssecHeaders(key));
    assert.equal(r.status, 403);
    assert.equal(errorCode(r.body), 'AccessDenied');
  });
});

describe('SigV2 presigned URLs (boto3\'s default) with the SSE-C key in the query', () => {
  test('with SSEC_PROXY_ALLOW_SIGV2=false: refused with S3\'s message for SigV4-only regions; the key never reaches a log line', async () => {
    const key = newKey();
    const v4only = await startTestProxy(up, { SSEC_PROXY_ALLOW_SIGV2: 'false' });
    after(() => v4only.close());
    const r = await rawRequest(v4only, up, {
      method: 'GET',
      path: `/${bucket}/obj`,
      sign: false,
      query: {
        AWSAccessKeyId: up.accessKeyId,
        Expires: String(Math.floor(Date.now() / 1000) + 300),
        Signature: 'c2lnbmF0dXJl',
        'x-amz-server-side-encryption-customer-algorithm': 'AES256',
        'x-amz-server-side-encryption-customer-key': key.b64,
        'x-amz-server-side-encryption-customer-key-MD5': key.md5,
      },
    });
    assert.equal(r.status, 400);
    assert.equal(errorCode(r.body), 'InvalidRequest');
    assert.match(r.body.toString(), /Please use AWS4-HMAC-SHA256/);
    assert.ok(!r.body.toString().includes(key.b64));
    assert.ok(!JSON.stringify(v4only.logs).includes(key.b64), 'key in the access log');
  });
});

describe('presigned PUT with SSE-C', () => {
  test('the SDK presigner\'s URL with the SSE-C headers uploads; its default checksum of an empty body is checked as S3 does', async () => {
    const key = newKey();
    const body = randomBytes(1000);
    const put = async (url: string) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const r = https.request(url, { method: 'PUT', ca: t.caPem, headers: { ...ssecHeaders(key), 'content-length': String(body.length) } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        r.on('error', reject);
        r.end(body);
      });
    // Default settings: the presigned query carries x-amz-checksum-crc32 of an empty body, so S3 refuses the upload.
    const withDefault = await getSignedUrl(s3, new PutObjectCommand({ Bucket: bucket, Key: 'presigned-put', ...sse(key) }), { expiresIn: 300 });
    assert.match(withDefault, /x-amz-checksum-crc32=AAAAAA/);
    const refused = await put(withDefault);
    assert.equal(refused.status, 400, refused.text);
    assert.equal(errorCode(refused.text), 'BadDigest');
    const noChecksum = t.client({ requestChecksumCalculation: 'WHEN_REQUIRED' });
    const good = await getSignedUrl(noChecksum, new PutObjectCommand({ Bucket: bucket, Key: 'presigned-put', ...sse(key) }), { expiresIn: 300 });
    assert.doesNotMatch(good, /x-amz-checksum-crc32=/);
    const ok = await put(good);
    assert.equal(ok.status, 200, ok.text);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'presigned-put', ...sse(key) }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(body));
    // A presigned URL that carries the body's real checksum: verified, kept, and returned with checksum mode.
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0);
    const withSum = await getSignedUrl(noChecksum, new PutObjectCommand({ Bucket: bucket, Key: 'presigned-sum', ChecksumCRC32: crc.toString('base64'), ...sse(key) }), {
      expiresIn: 300,
    });
    assert.match(withSum, /x-amz-checksum-crc32=/);
    const stored = await put(withSum);
    assert.equal(stored.status, 200, stored.text);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'presigned-sum', ChecksumMode: 'ENABLED', ...sse(key) }));
    assert.equal(head.ChecksumCRC32, crc.toString('base64'));
  });
});

describe('pass-through, re-signed', () => {
  test('buckets, listings with pagination, tagging, DeleteObjects and DeleteObject', async () => {
    const b = `pt-${randomBytes(4).toString('hex')}`;
    await s3.send(new CreateBucketCommand({ Bucket: b }));
    const names = ['a', 'b/c', 'b/d', 'sp ace+plus'];
    for (const k of names) await s3.send(new PutObjectCommand({ Bucket: b, Key: k, Body: k }));
    const buckets = await s3.send(new ListBucketsCommand({}));
    assert.ok(buckets.Buckets?.some((x) => x.Name === b));
    const page1 = await s3.send(new ListObjectsV2Command({ Bucket: b, MaxKeys: 2 }));
    assert.equal(page1.Contents?.length, 2);
    const page2 = await s3.send(new ListObjectsV2Command({ Bucket: b, ContinuationToken: page1.NextContinuationToken }));
    assert.deepEqual([...page1.Contents!, ...page2.Contents!].map((c) => c.Key).sort(), [...names].sort());
    const delim = await s3.send(new ListObjectsV2Command({ Bucket: b, Delimiter: '/' }));
    assert.deepEqual(delim.CommonPrefixes?.map((p) => p.Prefix), ['b/']);
    await s3.send(new PutObjectTaggingCommand({ Bucket: b, Key: 'a', Tagging: { TagSet: [{ Key: 't', Value: 'v' }] } }));
    const tags = await s3.send(new GetObjectTaggingCommand({ Bucket: b, Key: 'a' }));
    assert.deepEqual(tags.TagSet, [{ Key: 't', Value: 'v' }]);
    const got = await s3.send(new GetObjectCommand({ Bucket: b, Key: 'sp ace+plus' }));
    assert.equal(await got.Body!.transformToString(), 'sp ace+plus');
    await s3.send(new DeleteObjectsCommand({ Bucket: b, Delete: { Objects: [{ Key: 'b/c' }, { Key: 'b/d' }] } }));
    await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'a' }));
    await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'sp ace+plus' }));
    await s3.send(new DeleteBucketCommand({ Bucket: b }));
    const after = await s3.send(new ListBucketsCommand({}));
    assert.ok(!after.Buckets?.some((x) => x.Name === b));
  });

  test('regression: an unencrypted upload the SDK sends with Expect: 100-continue (bodies ≥ 2 MiB) passes through', async () => {
    const body = randomBytes(3 * 1024 * 1024);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'big-plain', Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big-plain' }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(body));
  });

  test('the upstream\'s own errors come back as they are (NoSuchBucket)', async () => {
    const r = await rawRequest(t, up, { method: 'GET', path: `/no-such-bucket-${randomBytes(4).toString('hex')}/x` });
    assert.equal(r.status, 404);
    assert.equal(errorCode(r.body), 'NoSuchBucket');
  });

  test('oversize request headers → 400 RequestHeaderSectionTooLarge', async () => {
    const url = new URL(t.endpoint);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: url.hostname, port: Number(url.port), ca: t.caPem }, () => {
        socket.write(`GET /${bucket}/obj HTTP/1.1\r\nHost: ${url.host}\r\nx-amz-meta-big: ${'a'.repeat(70_000)}\r\n\r\n`);
      });
      let data = '';
      socket.on('data', (c: Buffer) => (data += c.toString()));
      socket.on('end', () => resolve(data));
      socket.on('error', (e) => (data ? resolve(data) : reject(e)));
    });
    assert.match(answer, /^HTTP\/1\.1 400/);
    assert.equal(errorCode(answer), 'RequestHeaderSectionTooLarge');
  });
});

describe('client credentials mapped to upstream identities', () => {
  let mapped: TestProxy;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssec-creds-'));
    const file = join(dir, 'creds.json');
    writeFileSync(
      file,
      JSON.stringify([
        { accessKeyId: 'APPKEY1', secretAccessKey: 'app-secret-1', upstream: ALT },
        { accessKeyId: 'APPKEY2', secretAccessKey: 'app-secret-2' },
      ]),
    );
    mapped = await startTestProxy(up, { SSEC_PROXY_CREDENTIALS_FILE: file });
  });
  after(async () => mapped?.close());

  test('each client pair is re-signed as its own upstream user, so the store\'s permissions apply', async () => {
    const app1 = mapped.client({ accessKeyId: 'APPKEY1', secretAccessKey: 'app-secret-1' });
    const app2 = mapped.client({ accessKeyId: 'APPKEY2', secretAccessKey: 'app-secret-2' });
    const b = `alt-${randomBytes(4).toString('hex')}`;
    await app1.send(new CreateBucketCommand({ Bucket: b }));
    const asAlt = new S3Client({ endpoint: up.endpoint, region: up.region, forcePathStyle: true, credentials: ALT });
    try {
      const altBuckets = await asAlt.send(new ListBucketsCommand({}));
      assert.ok(altBuckets.Buckets?.some((x) => x.Name === b), 'bucket owned by the mapped upstream user');
      const mainBuckets = await app2.send(new ListBucketsCommand({}));
      assert.ok(!mainBuckets.Buckets?.some((x) => x.Name === b), 'not visible to the other identity');
      // The upstream's own pair is not accepted once explicit credentials are configured.
      const r = await rawRequest(mapped, up, { method: 'GET', path: '/' });
      assert.equal(r.status, 403);
      assert.equal(errorCode(r.body), 'InvalidAccessKeyId');
    } finally {
      await asAlt.send(new DeleteBucketCommand({ Bucket: b }));
      asAlt.destroy();
    }
  });
});

describe('Expect: 100-continue', () => {
  function put(headers: Record<string, string>, secret = up.secretAccessKey) {
    return new Promise<{ continued: boolean; status: number; code: string | undefined }>(async (resolve, reject) => {
      const url = new URL(t.endpoint);
      const signer = clientSigner(up, { secret });
      const body = Buffer.alloc(100_000, 1);
      const signed = await signer.sign({
        method: 'PUT',
        protocol: 'https:',
        hostname: url.hostname,
        port: Number(url.port),
        path: `/${bucket}/continued`,
        query: {},
        headers: {
          host: url.host,
          'content-length': String(body.length),
          'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
          ...headers,
        },
      });
      let continued = false;
      const req = https.request(
        { host: url.hostname, port: url.port, method: 'PUT', path: `/${bucket}/continued`, headers: { ...signed.headers, expect: '100-continue' }, ca: t.caPem, agent: false },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ continued, status: res.statusCode ?? 0, code: errorCode(text) }));
        },
      );
      req.on('continue', () => {
        continued = true;
        req.end(body);
      });
      req.on('error', reject);
      req.flushHeaders();
    });
  }

  test('a good SSE-C upload gets 100 Continue and then 200', async () => {
    const r = await put(ssecHeaders(newKey()));
    assert.deepEqual(r, { continued: true, status: 200, code: undefined });
  });

  test('a bad signature or bad SSE-C headers are answered before the body is sent', async () => {
    const badSig = await put(ssecHeaders(newKey()), 'wrong');
    assert.deepEqual(badSig, { continued: false, status: 403, code: 'SignatureDoesNotMatch' });
    const badKey = await put({ ...ssecHeaders(newKey()), 'x-amz-server-side-encryption-customer-key-md5': newKey().md5 });
    assert.deepEqual(badKey, { continued: false, status: 400, code: 'InvalidArgument' });
  });
});
