/**
 * Listings of buckets declared encrypted-only (SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS): a replica that has never seen
 * the objects takes their plaintext sizes from the stored sizes where those determine them (single PUTs;
 * multipart objects with chunk-aligned parts), with no request but the listing; other objects still cost a
 * HEAD, and undeclared buckets behave as before (docs/MULTIPART.md, "Listings").
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { encryptedSize } from '../../src/format/layout.ts';
import { TAIL_SIZE } from '../../src/format/tail.ts';
import { bodyBytes, newKey, sse, type TestProxy } from '../support/proxy.ts';
import { describeRequests } from '../support/s3-double.ts';
import { anotherProxy, startFast, uploadMultipart, upstreamOf, type Fast } from './harness.ts';

const C = 65536;
const MiB = 1024 * 1024;
const declared = 'enc-only';
const other = 'mixed';
const key = newKey();

/** Single-PUT plaintext sizes: empty, small, and either side of chunk boundaries. */
const singles = [0, 1, 100, C - 1, C, C + 1, 2 * C - 1, 2 * C, 2 * C + 1, 3 * C + 17];
/** Aligned layouts: every part but the last a multiple of C (5 MiB = 80 chunks). */
const aligned: Record<string, number[]> = {
  'd/mp/aligned-tail': [5 * MiB, 5 * MiB, 1000],
  'd/mp/aligned-full': [5 * MiB, 5 * MiB],
  'd/mp/aligned-one-byte': [5 * MiB, 1],
};
/** An unaligned layout whose stored size no aligned one has (5 MiB + 1, then C − 20: residue 21 after records). */
const unaligned: Record<string, number[]> = { 'x/unaligned': [5 * MiB + 1, C - 20] };
/** A plain object in the declared bucket, of a size no encrypted stream has (F + 10). */
const plainSize = C + 40 + 10;

let fast: Fast;
let cold: { proxy: TestProxy; s3: S3Client } | undefined;

const expected = new Map<string, number>();

async function fill(bucket: string): Promise<void> {
  const { s3 } = fast;
  for (const n of singles) {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `d/single/${n}`, Body: randomBytes(n), ...sse(key) }));
    expected.set(`d/single/${n}`, n);
  }
  for (const [name, sizes] of Object.entries({ ...aligned, ...unaligned })) {
    await uploadMultipart(s3, bucket, name, sizes.map((s) => randomBytes(s)), key);
    expected.set(name, sizes.reduce((a, b) => a + b, 0));
  }
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'x/plain', Body: randomBytes(plainSize) }));
  expected.set('x/plain', plainSize);
}

before(async () => {
  fast = await startFast({ buckets: [declared, other], env: { SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS: JSON.stringify(['enc-*']) } });
  await fill(declared);
  await fill(other);
  cold = await anotherProxy(fast.double, { SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS: '["enc-*"]' });
});
after(async () => {
  await cold?.proxy.close();
  await fast?.close();
});

async function listSizes(s3: S3Client, bucket: string): Promise<Map<string, number>> {
  const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  return new Map((page.Contents ?? []).map((o) => [o.Key!, o.Size!]));
}

describe('a cold replica lists a declared encrypted-only bucket', () => {
  test('the right plaintext sizes, with a HEAD only for the unaligned upload and the plain object', async () => {
    let sizes = new Map<string, number>();
    const requests = await upstreamOf(fast.double, async () => (sizes = await listSizes(cold!.s3, declared)));
    assert.deepEqual(Object.fromEntries(sizes), Object.fromEntries(expected));
    const heads = requests.filter((r) => r.method === 'HEAD').map((r) => decodeURIComponent(r.path.split('/').slice(2).join('/'))).sort();
    assert.deepEqual(heads, ['x/plain', 'x/unaligned'], describeRequests(requests));
    // Besides the listing: the two HEADs and one tail-record read per part of the unaligned upload.
    assert.equal(requests.filter((r) => r.op === 'ListObjectsV2').length, 1, describeRequests(requests));
    assert.equal(requests.length, 1 + 2 + 2, describeRequests(requests));
  });

  test('objects of natural sizes and aligned layouts alone: exactly one upstream request', async () => {
    const { proxy, s3 } = await anotherProxy(fast.double, { SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS: '["enc-only"]' });
    try {
      let page = new Map<string, number>();
      const requests = await upstreamOf(fast.double, async () => {
        const out = await s3.send(new ListObjectsV2Command({ Bucket: declared, Prefix: 'd/' }));
        page = new Map((out.Contents ?? []).map((o) => [o.Key!, o.Size!]));
      });
      assert.deepEqual(requests.map((r) => r.op), ['ListObjectsV2'], describeRequests(requests));
      assert.equal(page.size, singles.length + Object.keys(aligned).length);
      for (const [k, v] of page) assert.equal(v, expected.get(k), k);
    } finally {
      await proxy.close();
    }
  });
});

describe('an undeclared bucket', () => {
  test('a cold replica pays a HEAD per object that could be encrypted, as before, with the same sizes', async () => {
    const { proxy, s3 } = await anotherProxy(fast.double, { SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS: '["enc-*"]' });
    try {
      let sizes = new Map<string, number>();
      const requests = await upstreamOf(fast.double, async () => (sizes = await listSizes(s3, other)));
      assert.deepEqual(Object.fromEntries(sizes), Object.fromEntries(expected));
      assert.equal(requests.filter((r) => r.method === 'HEAD').length, expected.size, describeRequests(requests));
    } finally {
      await proxy.close();
    }
  });
});

describe('a single PUT whose checksum comes as an aws-chunked trailer (the SDKs default for streamed bodies)', () => {
  test('in a declared bucket it is stored with no tail record, so a cold listing shows its exact size', async () => {
    const n = 3 * C + 5;
    const body = randomBytes(n);
    const put = (Bucket: string) =>
      fast.s3.send(new PutObjectCommand({ Bucket, Key: 'trailer/one', Body: Readable.from([body]), ContentLength: n, ChecksumAlgorithm: 'CRC32', ...sse(key) }));
    await put(other);
    await put(declared);
    // Elsewhere the trailer's checksum is kept in an 80-byte record after the chunks (so the client did send one).
    assert.equal(fast.double.objects.get(other, 'trailer/one')!.body.length, encryptedSize(n, C) + TAIL_SIZE);
    assert.equal(fast.double.objects.get(declared, 'trailer/one')!.body.length, encryptedSize(n, C));
    const { proxy, s3 } = await anotherProxy(fast.double, { SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS: '["enc-only"]' });
    try {
      let sizes = new Map<string, number>();
      const requests = await upstreamOf(fast.double, async () => {
        const out = await s3.send(new ListObjectsV2Command({ Bucket: declared, Prefix: 'trailer/' }));
        sizes = new Map((out.Contents ?? []).map((o) => [o.Key!, o.Size!]));
      });
      assert.deepEqual(requests.map((r) => r.op), ['ListObjectsV2'], describeRequests(requests));
      assert.equal(sizes.get('trailer/one'), n);
      const got = await s3.send(new GetObjectCommand({ Bucket: declared, Key: 'trailer/one', ...sse(key) }));
      assert.ok((await bodyBytes(got.Body)).equals(body));
    } finally {
      await proxy.close();
    }
  });
});
