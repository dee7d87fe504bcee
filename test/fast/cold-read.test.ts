/**
 * What a replica that has never seen an object asks the store for, request by request (issue 10: a cold ranged
 * GET of a multipart object threw away a guessed GET). Every upstream answer the proxy asks for is read to its
 * end; the requests are counted exactly. Errors on the cold path still carry S3's XML.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { bodyBytes, newKey, sse } from '../support/proxy.ts';
import { describeRequests, type RecordedRequest } from '../support/s3-double.ts';
import { anotherProxy, assertNoBodyThrownAway, rejectsWith, startFast, uploadMultipart, upstreamOf, type Fast } from './harness.ts';

const MiB = 1024 * 1024;
const bucket = 'cold';
const key = newKey();
const parts = [randomBytes(5 * MiB + 1), randomBytes(5 * MiB + 1), randomBytes(777)];
const whole = Buffer.concat(parts);
const single = randomBytes(300_000);

let fast: Fast;
const cold: Array<Awaited<ReturnType<typeof anotherProxy>>> = [];

/** A replica that has never seen anything. */
async function freshReplica(): Promise<S3Client> {
  const r = await anotherProxy(fast.double);
  cold.push(r);
  return r.s3;
}

/**
 * Every byte the store sent for the last GetObject went through the proxy's own stages (counted in its access
 * log as upstreamBytesIn): none was read only to be dumped.
 */
function assertEveryByteUsed(requests: RecordedRequest[]): void {
  const line = cold.at(-1)!.proxy.logs.findLast((l) => l.op === 'GetObject');
  const sent = requests.reduce((n, r) => n + r.bodyBytesOut, 0);
  assert.equal(line?.upstreamBytesIn, sent, describeRequests(requests));
}

const shape = (requests: RecordedRequest[]) => requests.map((r) => `${r.method} ${r.headers.range ?? ''}`.trim());

before(async () => {
  fast = await startFast({ chunkSizeLog2: 12, buckets: [bucket] });
  const s3 = fast.s3;
  await uploadMultipart(s3, bucket, 'mp', parts, key);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'single', Body: single, ...sse(key) }));
});

after(async () => {
  for (const r of cold) await r.proxy.close();
  await fast.close();
});

describe('a cold replica', () => {
  test('ranged GET across a part boundary of a 3-part object: HEAD, one 80-byte read per part, one exact GET; no body thrown away', async () => {
    const s3 = await freshReplica();
    const [a, b] = [5 * MiB - 10, 5 * MiB + 20];
    let got: Buffer | undefined;
    const requests = await upstreamOf(fast.double, async () => {
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp', Range: `bytes=${a}-${b}`, ...sse(key) }));
      got = await bodyBytes(r.Body);
    });
    assert.ok(got?.equals(whole.subarray(a, b + 1)));
    assertNoBodyThrownAway(requests);
    assertEveryByteUsed(requests);
    const s = shape(requests);
    assert.equal(requests.length, 5, describeRequests(requests));
    assert.equal(s[0], 'HEAD');
    for (const r of requests.slice(1, 4)) assert.equal(r.bodyBytesRequested, 80, describeRequests(requests));
    assert.match(s[4]!, /^GET bytes=\d+-\d+$/);
    // The exact GET is pinned to the version the HEAD saw.
    assert.equal(requests[4]!.headers['if-match'], fast.double.objects.get(bucket, 'mp')!.etag);
  });

  test('the same range again: one request, the exact chunks', async () => {
    const s3 = await freshReplica();
    await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp', Range: 'bytes=0-0', ...sse(key) })).then((r) => bodyBytes(r.Body));
    const requests = await upstreamOf(fast.double, async () => {
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp', Range: 'bytes=100-200', ...sse(key) }));
      assert.ok((await bodyBytes(r.Body)).equals(whole.subarray(100, 201)));
    });
    assertNoBodyThrownAway(requests);
    assert.equal(requests.length, 1, describeRequests(requests));
  });

  test('whole GET of the multipart object: the GET waits, unread, while the part table is read; nothing thrown away', async () => {
    const s3 = await freshReplica();
    const requests = await upstreamOf(fast.double, async () => {
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp', ...sse(key) }));
      assert.ok((await bodyBytes(r.Body)).equals(whole));
    });
    assertNoBodyThrownAway(requests);
    assertEveryByteUsed(requests);
    assert.deepEqual(shape(requests)[0], 'GET');
    assert.equal(requests.length, 4, describeRequests(requests));
  });

  test('ranged GET of a single-PUT object: HEAD then the exact chunks', async () => {
    const s3 = await freshReplica();
    const requests = await upstreamOf(fast.double, async () => {
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'single', Range: 'bytes=100000-100099', ...sse(key) }));
      assert.ok((await bodyBytes(r.Body)).equals(single.subarray(100000, 100100)));
    });
    assertNoBodyThrownAway(requests);
    assertEveryByteUsed(requests);
    assert.deepEqual(
      shape(requests).map((s) => s.split(' ')[0]),
      ['HEAD', 'GET'],
      describeRequests(requests),
    );
  });

  test('ranged GET of a missing key: S3 NoSuchKey with its XML, not an empty 404', async () => {
    const s3 = await freshReplica();
    await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'nothing-here', Range: 'bytes=0-9', ...sse(key) })), 'NoSuchKey', 404);
  });

  test('part read (?partNumber) of a missing key: NoSuchKey too', async () => {
    const s3 = await freshReplica();
    await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'nothing-here', PartNumber: 1, ...sse(key) })), 'NoSuchKey', 404);
  });

  test('ranged GET whose If-Match fails: PreconditionFailed with its XML', async () => {
    const s3 = await freshReplica();
    await rejectsWith(
      s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'single', Range: 'bytes=0-9', IfMatch: '"0123456789abcdef0123456789abcdef"', ...sse(key) })),
      'PreconditionFailed',
      412,
    );
  });
});
