/**
 * How many upstream requests the proxy makes for common operations, and that it reads every answer body it
 * asks for (none cut off, none larger than the chunks the answer needs). The counts are what the proxy does
 * today, asserted exactly so that a change is noticed.
 *
 * The cold ranged GET of a multipart object is a HEAD, one 80-byte tail-record read per part and one GET of
 * exactly the answer's chunks, pinned to the ETag the HEAD saw (test/fast/cold-read.test.ts checks that every
 * byte the store sends is used). Before (e8ba34f) it began with a GET of a range guessed from the default chunk
 * size, kept when the guess happened to cover the answer and read only to be dumped when it did not.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { bodyBytes, newKey, sse } from '../support/proxy.ts';
import { describeRequests, type RecordedRequest, type S3Double } from '../support/s3-double.ts';
import { anotherProxy, assertNoBodyThrownAway, startFast, uploadMultipart, upstreamOf, type Fast } from './harness.ts';

const bucket = 'counts';
const C = 65536;
/** A full chunk at rest: C plaintext bytes + 24-byte header + 16-byte tag (docs/FORMAT.md §5.2). */
const F = C + 40;
const key = newKey();
const n = 3 * C + 17;
const data = randomBytes(n);
const cipherSize = n + 4 * 40;
const P = 5 * 1024 * 1024 + 1;
const parts = [randomBytes(P), randomBytes(1000)];

let fast: Fast;
let s3: S3Client;
let double: S3Double;
let etag: string;

before(async () => {
  fast = await startFast({ buckets: [bucket] });
  ({ s3, double } = fast);
});
after(async () => fast?.close());

const getBytes = async (client: S3Client, Key: string, Range?: string) =>
  bodyBytes((await client.send(new GetObjectCommand({ Bucket: bucket, Key, ...(Range ? { Range } : {}), ...sse(key) }))).Body);

/** `requests` are exactly these operations, and every answer body was read whole. */
function assertRequests(requests: RecordedRequest[], ops: string[]): void {
  assert.deepEqual(
    requests.map((r) => r.op),
    ops,
    describeRequests(requests),
  );
  assertNoBodyThrownAway(requests);
}

describe('a single-PUT object (3 chunks + 17 bytes)', () => {
  test('PUT: 1 request carrying the ciphertext', async () => {
    const requests = await upstreamOf(double, async () => {
      const answered = (await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'single', Body: data, ...sse(key) }))).ETag!;
      // Reads are pinned to the store's ETag; the client was given it with the encrypted object's suffix.
      etag = double.objects.get(bucket, 'single')!.etag;
      assert.equal(answered, `${etag.slice(0, -1)}-0"`);
    });
    assertRequests(requests, ['PutObject']);
    assert.equal(requests[0]!.bodyBytesIn, cipherSize);
  });

  test('HEAD after the PUT through the same proxy: 1 HEAD', async () => {
    const requests = await upstreamOf(double, () => s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'single', ...sse(key) })));
    assertRequests(requests, ['HeadObject']);
  });

  test('warm ranged GET: 1 GET of exactly the chunks holding the range, pinned to the known ETag', async () => {
    const requests = await upstreamOf(double, async () => assert.ok((await getBytes(s3, 'single', `bytes=${C - 5}-${C + 5}`)).equals(data.subarray(C - 5, C + 6))));
    assertRequests(requests, ['GetObject']);
    assert.equal(requests[0]!.headers.range, `bytes=0-${2 * F - 1}`);
    assert.equal(requests[0]!.headers['if-match'], etag);
  });

  test('warm suffix GET: 1 GET of the last chunk only', async () => {
    const requests = await upstreamOf(double, async () => assert.ok((await getBytes(s3, 'single', 'bytes=-10')).equals(data.subarray(n - 10))));
    assertRequests(requests, ['GetObject']);
    assert.equal(requests[0]!.headers.range, `bytes=${3 * F}-${cipherSize - 1}`);
  });

  test('whole GET: 1 GET of the whole ciphertext', async () => {
    const requests = await upstreamOf(double, async () => assert.ok((await getBytes(s3, 'single')).equals(data)));
    assertRequests(requests, ['GetObject']);
    assert.equal(requests[0]!.headers.range, undefined);
    assert.equal(requests[0]!.bodyBytesOut, cipherSize);
  });

  test('listing through the proxy that wrote it: 1 request, no HEAD', async () => {
    const requests = await upstreamOf(double, () => s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'single' })));
    assertRequests(requests, ['ListObjectsV2']);
  });

  describe('from a cold proxy (a replica that has seen nothing)', () => {
    const cold = async <T>(fn: (client: S3Client) => Promise<T>) => {
      const other = await anotherProxy(double);
      try {
        return await upstreamOf(double, () => fn(other.s3));
      } finally {
        await other.proxy.close();
      }
    };

    test('ranged GET: a HEAD, then 1 GET of exactly the chunks holding the range, pinned', async () => {
      const requests = await cold(async (c) => assert.ok((await getBytes(c, 'single', `bytes=${C - 5}-${C + 5}`)).equals(data.subarray(C - 5, C + 6))));
      assertRequests(requests, ['HeadObject', 'GetObject']);
      assert.equal(requests[1]!.headers.range, `bytes=0-${2 * F - 1}`);
      assert.equal(requests[1]!.headers['if-match'], etag);
    });

    test('suffix GET: a HEAD, then 1 GET of the last chunk only', async () => {
      const requests = await cold(async (c) => assert.ok((await getBytes(c, 'single', 'bytes=-10')).equals(data.subarray(n - 10))));
      assertRequests(requests, ['HeadObject', 'GetObject']);
      assert.equal(requests[1]!.headers.range, `bytes=${3 * F}-${cipherSize - 1}`);
    });

    test('HEAD: 1 HEAD', async () => {
      const requests = await cold((c) => c.send(new HeadObjectCommand({ Bucket: bucket, Key: 'single', ...sse(key) })));
      assertRequests(requests, ['HeadObject']);
    });

    test('listing: the listing and 1 HEAD for the encrypted object', async () => {
      const requests = await cold((c) => c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'single' })));
      assertRequests(requests, ['ListObjectsV2', 'HeadObject']);
    });
  });
});

test('an object with 4 KiB chunks, read cold by a proxy configured for 64 KiB: a HEAD, then the exact chunk', async () => {
  const small = await startFast({ chunkSizeLog2: 12, buckets: [bucket] });
  try {
    const body = randomBytes(1024 * 1024);
    await small.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'small-chunks', Body: body, ...sse(key) }));
    const reader = await anotherProxy(small.double);
    try {
      const requests = await upstreamOf(small.double, async () =>
        assert.ok((await getBytes(reader.s3, 'small-chunks', 'bytes=500000-500010')).equals(body.subarray(500000, 500011))),
      );
      assertRequests(requests, ['HeadObject', 'GetObject']);
      const chunk = Math.floor(500000 / 4096) * (4096 + 40);
      assert.equal(requests[1]!.headers.range, `bytes=${chunk}-${chunk + 4096 + 40 - 1}`);
    } finally {
      await reader.proxy.close();
    }
  } finally {
    await small.close();
  }
});

test('a plain object: PUT and GET are 1 request each, passed through', async () => {
  const put = await upstreamOf(double, () => s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain', Body: data })));
  assertRequests(put, ['PutObject']);
  assert.equal(put[0]!.bodyBytesIn, n);
  const get = await upstreamOf(double, async () => assert.ok((await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'plain' }))).Body)).equals(data)));
  assertRequests(get, ['GetObject']);
});

describe('a multipart object (5 MiB + 1 and 1000 bytes)', () => {
  const whole = Buffer.concat(parts);
  const range = `bytes=${P - 5}-${P + 5}`;

  before(async () => {
    await uploadMultipart(s3, bucket, 'mp', parts, key);
  });

  test('warm ranged GET across the part boundary: 1 GET, pinned', async () => {
    const requests = await upstreamOf(double, async () => assert.ok((await getBytes(s3, 'mp', range)).equals(whole.subarray(P - 5, P + 6))));
    assertRequests(requests, ['GetObject']);
    assert.match(String(requests[0]!.headers['if-match']), /-2"$/);
  });

  test('cold ranged GET across the part boundary: a HEAD, a tail record per part, 1 GET of the exact chunks', async () => {
    const other = await anotherProxy(double);
    try {
      const requests = await upstreamOf(double, async () => assert.ok((await getBytes(other.s3, 'mp', range)).equals(whole.subarray(P - 5, P + 6))));
      assertRequests(requests, ['HeadObject', 'GetObject', 'GetObject', 'GetObject']);
      assert.deepEqual(
        requests.slice(1, 3).map((r) => r.bodyBytesRequested),
        [80, 80],
        describeRequests(requests),
      );
      for (const r of requests.slice(1)) assert.equal(r.headers['if-match'], double.objects.get(bucket, 'mp')!.etag);
    } finally {
      await other.proxy.close();
    }
  });
});
