/**
 * SSE-C PutObject / GetObject / HeadObject through the proxy over HTTPS, against Ceph RGW: round trips,
 * ranges, what is at rest upstream, conditionals, metadata, and every single-object row of S3's SSE-C table.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { encryptedSize } from '../../src/format/layout.ts';
import { ENVELOPE_META } from '../../src/s3/headers.ts';
import {
  bodyBytes as bytes,
  directClient,
  errorCode,
  errorMessage,
  logLine,
  newKey,
  rawRequest,
  rgwUpstream,
  sse,
  ssecHeaders,
  startTestProxy,
  type TestProxy,
  type UpstreamInfo,
} from '../support/proxy.ts';

const NEED_KEY =
  'The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.';

let up: UpstreamInfo;
let t: TestProxy;
let s3: S3Client;
let direct: S3Client;
const bucket = `ssec-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up, { SSEC_PROXY_HTTP_LISTEN: '127.0.0.1:0' });
  s3 = t.client();
  direct = directClient(up);
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
});

after(async () => {
  direct?.destroy();
  await t?.close();
});

describe('round trips', () => {
  const key = newKey();
  const C = 65536;
  const sizes = [0, 1, C - 1, C, C + 1, 3 * C + 17];
  for (const n of sizes) {
    test(`PUT then GET ${n} bytes is byte-identical, HEAD shows the plaintext size`, async () => {
      const data = randomBytes(n);
      const name = `rt/${n}`;
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: data, ...sse(key) }));
      assert.equal(put.SSECustomerAlgorithm, 'AES256');
      assert.equal(put.SSECustomerKeyMD5, key.md5);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, ...sse(key) }));
      assert.equal(got.ContentLength, n);
      assert.equal(got.SSECustomerKeyMD5, key.md5);
      assert.ok((await bytes(got.Body)).equals(data));
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: name, ...sse(key) }));
      assert.equal(head.ContentLength, n);
      assert.equal(head.ETag, put.ETag);
      // At rest: ciphertext of the exact encrypted size, not the plaintext, no key material in metadata.
      const raw = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: name }));
      const stored = await bytes(raw.Body);
      assert.equal(stored.length, encryptedSize(n, C));
      if (n >= 16) assert.equal(stored.indexOf(data.subarray(0, 16)), -1);
      const metaText = JSON.stringify(raw.Metadata);
      for (const secret of [key.b64, key.raw.toString('hex'), key.md5, key.raw.toString('base64url')]) {
        assert.ok(!metaText.includes(secret), 'key material in stored metadata');
      }
      if (n >= 8) assert.ok(!metaText.includes(data.subarray(0, 8).toString('base64')));
    });
  }

  test('user metadata and Content-Type round-trip; the envelope is never shown', async () => {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'meta',
        Body: 'hello',
        ContentType: 'text/x-test',
        Metadata: { colour: 'blue', 'my-key': 'v1' },
        ...sse(key),
      }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'meta', ...sse(key) }));
    assert.equal(head.ContentType, 'text/x-test');
    assert.deepEqual(head.Metadata, { colour: 'blue', 'my-key': 'v1' });
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'meta', ...sse(key) }));
    assert.deepEqual(got.Metadata, { colour: 'blue', 'my-key': 'v1' });
    assert.equal(await got.Body!.transformToString(), 'hello');
    // Listing passes through (sizes become plaintext in the multipart/listing issue).
    const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'meta' }));
    assert.equal(list.Contents?.[0]?.Key, 'meta');
  });

  test('a client cannot set the proxy\'s reserved metadata', async () => {
    const r = await rawRequest(t, up, {
      method: 'PUT',
      path: `/${bucket}/forged`,
      headers: { ...ssecHeaders(key), [ENVELOPE_META]: 'forged' },
      body: 'x',
    });
    assert.equal(r.status, 200);
    const raw = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: 'forged' }));
    assert.notEqual(raw.Metadata?.['s3-ssec-proxy'], 'forged');
  });
});

describe('ranges', () => {
  const key = newKey();
  const C = 65536;
  const n = 3 * C + 1000;
  const data = randomBytes(n);
  before(async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ranged', Body: data, ...sse(key) }));
  });
  const cases: Array<[string, number, number]> = [
    ['bytes=0-0', 0, 0],
    ['bytes=0-9', 0, 9],
    [`bytes=${C - 1}-${C}`, C - 1, C],
    [`bytes=${C}-${2 * C - 1}`, C, 2 * C - 1],
    [`bytes=100-${n + 50}`, 100, n - 1],
    [`bytes=${2 * C + 5}-`, 2 * C + 5, n - 1],
    ['bytes=-10', n - 10, n - 1],
    [`bytes=-${C + 1}`, n - C - 1, n - 1],
    [`bytes=-${n + 10}`, 0, n - 1],
  ];
  for (const [range, a, b] of cases) {
    test(`${range} → 206 with the plaintext Content-Range`, async () => {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ranged', Range: range, ...sse(key) }));
      assert.equal(got.ContentRange, `bytes ${a}-${b}/${n}`);
      assert.equal(got.ContentLength, b - a + 1);
      assert.ok((await bytes(got.Body)).equals(data.subarray(a, b + 1)));
    });
  }

  test('a ranged GET costs one upstream request', async () => {
    const before = t.logs.length;
    const got = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: 'ranged', Range: `bytes=${C + 3}-${C + 10}`, ...sse(key) }),
    );
    await bytes(got.Body);
    assert.equal((await logLine(t, before, 'GetObject')).upstreamRequests, 1);
  });

  test('a range past the end → 416 InvalidRange as S3', async () => {
    for (const range of [`bytes=${n}-`, `bytes=${n + 10 * C}-${n + 11 * C}`]) {
      const r = await rawRequest(t, up, {
        method: 'GET',
        path: `/${bucket}/ranged`,
        headers: { ...ssecHeaders(key), range },
      });
      assert.equal(r.status, 416, range);
      assert.equal(errorCode(r.body), 'InvalidRange');
      assert.equal(r.headers['content-range'], `bytes */${n}`);
    }
  });
});

describe("S3's SSE-C error table", () => {
  const key = newKey();
  const other = newKey();
  const path = `/${bucket}/secret`;
  before(async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'secret', Body: 'top secret', ...sse(key) }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain', Body: 'not secret' }));
  });

  test('GET without the headers → 400 InvalidRequest; HEAD → bare 400', async () => {
    const g = await rawRequest(t, up, { method: 'GET', path });
    assert.equal(g.status, 400);
    assert.equal(errorCode(g.body), 'InvalidRequest');
    assert.equal(errorMessage(g.body), NEED_KEY);
    const h = await rawRequest(t, up, { method: 'HEAD', path });
    assert.equal(h.status, 400);
    assert.equal(h.body.length, 0);
  });

  test('GET/HEAD with the wrong key → 403 AccessDenied, no plaintext', async () => {
    for (const method of ['GET', 'HEAD']) {
      const r = await rawRequest(t, up, { method, path, headers: ssecHeaders(other) });
      assert.equal(r.status, 403, method);
      if (method === 'GET') assert.equal(errorCode(r.body), 'AccessDenied');
      assert.ok(!r.body.toString().includes('top secret'));
    }
  });

  test('GET/HEAD with algorithm and key but no MD5 → 200; PUT without MD5 → 400', async () => {
    const h = ssecHeaders(key);
    delete h['x-amz-server-side-encryption-customer-key-md5'];
    const g = await rawRequest(t, up, { method: 'GET', path, headers: h });
    assert.equal(g.status, 200);
    assert.equal(g.body.toString(), 'top secret');
    const hd = await rawRequest(t, up, { method: 'HEAD', path, headers: h });
    assert.equal(hd.status, 200);
    const p = await rawRequest(t, up, { method: 'PUT', path: `/${bucket}/nomd5`, headers: h, body: 'x' });
    assert.equal(p.status, 400);
    assert.equal(errorCode(p.body), 'InvalidArgument');
  });

  test('a partial trio or another algorithm → 400 InvalidArgument', async () => {
    const full = ssecHeaders(key);
    const variants: Array<Record<string, string>> = [
      { 'x-amz-server-side-encryption-customer-algorithm': 'AES256' },
      { 'x-amz-server-side-encryption-customer-key': key.b64 },
      { 'x-amz-server-side-encryption-customer-key-md5': key.md5 },
      { ...full, 'x-amz-server-side-encryption-customer-algorithm': 'AES128' },
    ];
    for (const headers of variants) {
      for (const [method, p, body] of [
        ['GET', path, undefined],
        ['PUT', `/${bucket}/partial`, 'x'],
      ] as const) {
        const r = await rawRequest(t, up, { method, path: p, headers, ...(body ? { body } : {}) });
        assert.equal(r.status, 400, `${method} ${Object.keys(headers).join(',')}`);
        assert.equal(errorCode(r.body), 'InvalidArgument');
      }
    }
  });

  test('a key that is not 32 bytes: PUT → 400 InvalidArgument, GET/HEAD → 403', async () => {
    for (const len of [24, 44]) {
      const raw = randomBytes(len);
      const headers = {
        'x-amz-server-side-encryption-customer-algorithm': 'AES256',
        'x-amz-server-side-encryption-customer-key': raw.toString('base64'),
        'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(raw).digest('base64'),
      };
      const p = await rawRequest(t, up, { method: 'PUT', path: `/${bucket}/badkey`, headers, body: 'x' });
      assert.equal(p.status, 400);
      assert.equal(errorCode(p.body), 'InvalidArgument');
      assert.equal(errorMessage(p.body), 'The secret key was invalid for the specified algorithm.');
      assert.equal((await rawRequest(t, up, { method: 'GET', path, headers })).status, 403);
      assert.equal((await rawRequest(t, up, { method: 'HEAD', path, headers })).status, 403);
    }
  });

  test('an MD5 that does not match the key → 400 InvalidArgument', async () => {
    const headers = { ...ssecHeaders(key), 'x-amz-server-side-encryption-customer-key-md5': other.md5 };
    for (const [method, p] of [
      ['GET', path],
      ['PUT', `/${bucket}/badmd5`],
    ] as const) {
      const r = await rawRequest(t, up, { method, path: p, headers, ...(method === 'PUT' ? { body: 'x' } : {}) });
      assert.equal(r.status, 400);
      assert.equal(errorCode(r.body), 'InvalidArgument');
      assert.equal(errorMessage(r.body), 'The calculated MD5 hash of the key did not match the hash that was provided.');
    }
  });

  test('SSE-C together with SSE-S3 or SSE-KMS → 400 InvalidArgument', async () => {
    for (const sse of ['AES256', 'aws:kms']) {
      const r = await rawRequest(t, up, {
        method: 'PUT',
        path: `/${bucket}/mixed-sse`,
        headers: { ...ssecHeaders(key), 'x-amz-server-side-encryption': sse },
        body: 'x',
      });
      assert.equal(r.status, 400, sse);
      assert.equal(errorCode(r.body), 'InvalidArgument');
    }
  });

  test('SSE-C headers on an unencrypted object → 400 InvalidRequest', async () => {
    const r = await rawRequest(t, up, { method: 'GET', path: `/${bucket}/plain`, headers: ssecHeaders(key) });
    assert.equal(r.status, 400);
    assert.equal(errorCode(r.body), 'InvalidRequest');
    assert.equal(errorMessage(r.body), 'The encryption parameters are not applicable to this object.');
    const h = await rawRequest(t, up, { method: 'HEAD', path: `/${bucket}/plain`, headers: ssecHeaders(key) });
    assert.equal(h.status, 400);
  });

  test('copying an SSE-C object without its key → 400, and no copy is made', async () => {
    const r = await rawRequest(t, up, {
      method: 'PUT',
      path: `/${bucket}/copied`,
      headers: { 'x-amz-copy-source': `/${bucket}/secret` },
    });
    assert.equal(r.status, 400);
    assert.equal(errorCode(r.body), 'InvalidRequest');
    await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copied' })));
  });

  test('an unencrypted object without SSE-C passes through', async () => {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'plain' }));
    assert.equal(await got.Body!.transformToString(), 'not secret');
    const raw = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: 'plain' }));
    assert.equal(await raw.Body!.transformToString(), 'not secret');
  });

  test('SSE-C over plain HTTP → 400 InvalidRequest (no loopback switch)', async () => {
    const url = new URL(t.httpEndpoint!);
    const r = await fetch(`${t.httpEndpoint}${path}`, { headers: { ...ssecHeaders(key), host: url.host } });
    assert.equal(r.status, 400);
    const body = await r.text();
    assert.equal(errorCode(body), 'InvalidRequest');
    assert.equal(
      errorMessage(body),
      'Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.',
    );
  });
});

describe('uploads that must not be stored', () => {
  const key = newKey();
  const name = 'guarded';
  const original = randomBytes(1000);
  before(async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: original, ...sse(key) }));
  });
  async function intact() {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, ...sse(key) }));
    assert.ok((await bytes(got.Body)).equals(original), 'previous object intact');
  }

  test('a wrong Content-MD5 → 400 BadDigest, previous object intact', async () => {
    const body = randomBytes(200_000);
    const r = await rawRequest(t, up, {
      method: 'PUT',
      path: `/${bucket}/${name}`,
      headers: { ...ssecHeaders(key), 'content-md5': createHash('md5').update('other').digest('base64') },
      body,
    });
    assert.equal(r.status, 400);
    assert.equal(errorCode(r.body), 'BadDigest');
    await intact();
  });

  test('a signed payload hash that does not match → 400 XAmzContentSHA256Mismatch, nothing stored', async () => {
    const r = await rawRequest(t, up, {
      method: 'PUT',
      path: `/${bucket}/${name}`,
      headers: ssecHeaders(key),
      payloadHash: createHash('sha256').update('something else').digest('hex'),
      body: randomBytes(300_000),
    });
    assert.equal(r.status, 400);
    assert.equal(errorCode(r.body), 'XAmzContentSHA256Mismatch');
    await intact();
  });

  test('a body cut short by the client stores nothing, previous object intact', async () => {
    await assert.rejects(
      rawRequest(t, up, {
        method: 'PUT',
        path: `/${bucket}/${name}`,
        headers: ssecHeaders(key),
        body: randomBytes(500_000),
        cutAfter: 300_000,
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    await intact();
  });

  function chunked(data: Buffer, crc: string): Buffer {
    return Buffer.concat([
      Buffer.from(`${data.length.toString(16)}\r\n`),
      data,
      Buffer.from(`\r\n0\r\nx-amz-checksum-crc32:${crc}\r\n\r\n`),
    ]);
  }

  test('aws-chunked with a wrong CRC32 trailer → 400 BadDigest; nothing stored, SSE-C or not', async () => {
    const plainName = 'guarded-plain';
    const plainOriginal = randomBytes(500);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: plainName, Body: plainOriginal }));
    for (const [target, headers] of [
      [name, ssecHeaders(key)],
      [plainName, {}],
    ] as const) {
      const data = randomBytes(100_000);
      const r = await rawRequest(t, up, {
        method: 'PUT',
        path: `/${bucket}/${target}`,
        payloadHash: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        headers: {
          ...headers,
          'content-encoding': 'aws-chunked',
          'x-amz-decoded-content-length': String(data.length),
          'x-amz-trailer': 'x-amz-checksum-crc32',
        },
        body: chunked(data, 'AAAAAA=='),
      });
      assert.equal(r.status, 400, target);
      assert.equal(errorCode(r.body), 'BadDigest');
    }
    await intact();
    const plain = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: plainName }));
    assert.ok((await bytes(plain.Body)).equals(plainOriginal), 'previous unencrypted object intact');
  });

  test('a signed payload hash that matches is accepted', async () => {
    const body = randomBytes(1234);
    const r = await rawRequest(t, up, {
      method: 'PUT',
      path: `/${bucket}/hashed`,
      headers: ssecHeaders(key),
      payloadHash: createHash('sha256').update(body).digest('hex'),
      body,
    });
    assert.equal(r.status, 200);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'hashed', ...sse(key) }));
    assert.ok((await bytes(got.Body)).equals(body));
  });
});

describe('checksums the client gave are returned as S3 returns them', () => {
  test('GET/HEAD with checksum mode return the client\'s CRC32 / SHA256 of the plaintext (whole reads only), sealed at rest', async () => {
    const key = newKey();
    const data = randomBytes(150_000);
    for (const [name, algorithm, field] of [
      ['ck-crc32', 'CRC32', 'ChecksumCRC32'],
      ['ck-sha256', 'SHA256', 'ChecksumSHA256'],
    ] as const) {
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: data, ChecksumAlgorithm: algorithm, ...sse(key) }));
      const expected = put[field];
      assert.ok(expected, 'the SDK computed a checksum');
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, ChecksumMode: 'ENABLED', ...sse(key) }));
      assert.equal(got[field], expected);
      assert.ok((await bytes(got.Body)).equals(data)); // the SDK also validates the body against it
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: name, ChecksumMode: 'ENABLED', ...sse(key) }));
      assert.equal(head[field], expected);
      const ranged = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, Range: 'bytes=0-9', ChecksumMode: 'ENABLED', ...sse(key) }));
      assert.equal(ranged[field], undefined);
      await bytes(ranged.Body);
      const raw = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: name }));
      assert.ok(!JSON.stringify(raw.Metadata).includes(expected!), 'checksum stored sealed');
    }
  });
});

describe('checksums that arrive as aws-chunked trailers', () => {
  test('are verified, sealed after the last chunk and returned on whole GET, HEAD and GetObjectAttributes', async () => {
    const key = newKey();
    const rotated = newKey();
    const data = randomBytes(200_000);
    const fresh = await startTestProxy(up);
    try {
      for (const [name, algorithm, field] of [
        ['tail-crc32', 'CRC32', 'ChecksumCRC32'],
        ['tail-sha256', 'SHA256', 'ChecksumSHA256'],
      ] as const) {
        // A stream body makes the SDK send aws-chunked with the checksum as a trailer.
        const body = Readable.from([data.subarray(0, 70_000), data.subarray(70_000)]);
        const put = await s3.send(
          new PutObjectCommand({ Bucket: bucket, Key: name, Body: body, ContentLength: data.length, ChecksumAlgorithm: algorithm, ...sse(key) }),
        );
        const expected = put[field];
        assert.ok(expected, 'the proxy answers with the verified trailer checksum');
        const raw = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: name }));
        assert.equal(raw.Metadata?.['s3-ssec-proxy-checksum'], `${algorithm.toLowerCase()}.tail`);
        assert.equal(raw.ContentLength, encryptedSize(data.length, 65536) + 80, 'one 80-byte tail record after the chunks');

        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, ChecksumMode: 'ENABLED', ...sse(key) }));
        assert.equal(got[field], expected);
        assert.equal(got.ContentLength, data.length);
        assert.ok((await bytes(got.Body)).equals(data));
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: name, ChecksumMode: 'ENABLED', ...sse(key) }));
        assert.equal(head[field], expected);
        assert.equal(head.ContentLength, data.length);
        const attrs = await s3.send(
          new GetObjectAttributesCommand({ Bucket: bucket, Key: name, ObjectAttributes: ['Checksum', 'ObjectSize'], ...sse(key) }),
        );
        assert.equal(attrs.Checksum?.[field], expected);
        assert.equal(attrs.ObjectSize, data.length);
        const tail = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, Range: 'bytes=-10', ...sse(key) }));
        assert.ok((await bytes(tail.Body)).equals(data.subarray(-10)));
        const mid = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, Range: 'bytes=65530-140000', ...sse(key) }));
        assert.ok((await bytes(mid.Body)).equals(data.subarray(65530, 140001)));
        // A replica that never saw the object lists its plaintext size.
        const listed = await fresh.client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: name }));
        assert.equal(listed.Contents?.[0]?.Size, data.length);

        // Rotation by copy-to-self keeps the record; a copy to a plain object decrypts the chunks only.
        await s3.send(
          new CopyObjectCommand({
            Bucket: bucket,
            Key: name,
            CopySource: `${bucket}/${name}`,
            ...sse(rotated),
            CopySourceSSECustomerAlgorithm: 'AES256',
            CopySourceSSECustomerKey: key.b64,
            CopySourceSSECustomerKeyMD5: key.md5,
          }),
        );
        const after = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, ChecksumMode: 'ENABLED', ...sse(rotated) }));
        assert.equal(after[field], expected);
        assert.ok((await bytes(after.Body)).equals(data));
        await s3.send(
          new CopyObjectCommand({
            Bucket: bucket,
            Key: `${name}-plain`,
            CopySource: `${bucket}/${name}`,
            CopySourceSSECustomerAlgorithm: 'AES256',
            CopySourceSSECustomerKey: rotated.b64,
            CopySourceSSECustomerKeyMD5: rotated.md5,
          }),
        );
        const plain = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${name}-plain` }));
        assert.ok((await bytes(plain.Body)).equals(data));
      }
    } finally {
      await fresh.close();
    }
  });
});

describe('conditional requests', () => {
  const key = newKey();
  let etag: string;
  before(async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond', Body: 'conditional', ...sse(key) }));
    etag = put.ETag!;
  });
  test('If-None-Match with the current ETag → 304', async () => {
    const r = await rawRequest(t, up, {
      method: 'GET',
      path: `/${bucket}/cond`,
      headers: { ...ssecHeaders(key), 'if-none-match': etag },
    });
    assert.equal(r.status, 304);
  });
  test('If-Match with another ETag → 412 PreconditionFailed; with the right one → 200', async () => {
    const bad = await rawRequest(t, up, {
      method: 'GET',
      path: `/${bucket}/cond`,
      headers: { ...ssecHeaders(key), 'if-match': '"0123456789abcdef0123456789abcdef"' },
    });
    assert.equal(bad.status, 412);
    const good = await rawRequest(t, up, {
      method: 'GET',
      path: `/${bucket}/cond`,
      headers: { ...ssecHeaders(key), 'if-match': etag, range: 'bytes=0-3' },
    });
    assert.equal(good.status, 206);
    assert.equal(good.body.toString(), 'cond');
  });
  test('If-Modified-Since in the future → 304; If-Unmodified-Since in the past → 412', async () => {
    const future = new Date(Date.now() + 86400_000).toUTCString();
    const past = new Date(Date.now() - 86400_000).toUTCString();
    const a = await rawRequest(t, up, {
      method: 'GET',
      path: `/${bucket}/cond`,
      headers: { ...ssecHeaders(key), 'if-modified-since': future },
    });
    assert.equal(a.status, 304);
    const b = await rawRequest(t, up, {
      method: 'GET',
      path: `/${bucket}/cond`,
      headers: { ...ssecHeaders(key), 'if-unmodified-since': past },
    });
    assert.equal(b.status, 412);
  });
});
