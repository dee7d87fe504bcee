/**
 * CopyObject with SSE-C through the proxy over the in-memory S3 double: key rotation by copy-to-self done by
 * the upstream (no object body through the proxy), SSE-C → SSE-C under another name, and plain → SSE-C.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CopyObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { bodyBytes, copySourceSse, newKey, sse, type SseKey } from '../support/proxy.ts';
import { describeRequests, type S3Double } from '../support/s3-double.ts';
import { rejectsWith, startFast, upstreamOf, withMarker, type Fast } from './harness.ts';

const bucket = 'copies';
const C = 65536;
const marker = randomBytes(32);

let fast: Fast;
let s3: S3Client;
let double: S3Double;

before(async () => {
  fast = await startFast({ buckets: [bucket] });
  ({ s3, double } = fast);
});
after(async () => fast?.close());

/** The SDK's parameters of a copy source encrypted with `k`. */

const read = async (Key: string, k?: SseKey) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key, ...(k ? sse(k) : {}) }))).Body);

describe('copy-to-self key rotation', () => {
  // A name that must be percent-encoded in x-amz-copy-source.
  const name = 'dir/ünï cødé+rotation?.bin';
  const source = `${bucket}/${encodeURIComponent(name)}`;
  const oldKey = newKey();
  const nextKey = newKey();
  const data = withMarker(randomBytes(2 * C + 5), marker, [100]);

  test('the new key reads identical bytes, the old one is refused, and the upstream copied the ciphertext itself', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: data, ContentType: 'text/x-rot', Metadata: { colour: 'red' }, ...sse(oldKey) }));
    const before = Buffer.from(double.objects.get(bucket, name)!.body);
    const requests = await upstreamOf(double, () =>
      s3.send(new CopyObjectCommand({ Bucket: bucket, Key: name, CopySource: source, ...copySourceSse(oldKey), ...sse(nextKey) })),
    );
    const trace = describeRequests(requests);
    // No GET of the object through the proxy: the upstream CopyObject moved the bytes.
    assert.ok(!requests.some((r) => r.op === 'GetObject'), trace);
    assert.deepEqual(
      requests.map((r) => r.op),
      ['HeadObject', 'CopyObject'],
      trace,
    );
    const copy = requests.find((r) => r.op === 'CopyObject')!;
    assert.equal(copy.headers['x-amz-copy-source'], source);
    assert.equal(copy.bodyBytesIn, 0);
    assert.ok(requests.every((r) => r.bodyBytesOut < 1024), trace);
    // Same data key: the stored ciphertext is unchanged; only the sealed envelope in the metadata changed.
    const after = double.objects.get(bucket, name)!;
    assert.ok(after.body.equals(before));

    assert.ok((await read(name, nextKey)).equals(data));
    await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, ...sse(oldKey) })), 'AccessDenied', 403);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: name, ...sse(nextKey) }));
    assert.equal(head.ContentLength, data.length);
    assert.equal(head.ContentType, 'text/x-rot');
    assert.deepEqual(head.Metadata, { colour: 'red' });
  });

  test('a copy source condition that does not hold is S3\'s 412, and nothing changes', async () => {
    const other = newKey();
    await rejectsWith(
      s3.send(new CopyObjectCommand({ Bucket: bucket, Key: name, CopySource: source, CopySourceIfMatch: '"00000000000000000000000000000000"', ...copySourceSse(nextKey), ...sse(other) })),
      'PreconditionFailed',
      412,
    );
    assert.ok((await read(name, nextKey)).equals(data));
  });
});

describe('SSE-C → SSE-C under another name', () => {
  test('the copy reads with its own key; the source keeps its key', async () => {
    const [a, b] = [newKey(), newKey()];
    const data = randomBytes(C + 1);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'src', Body: data, ...sse(a) }));
    const requests = await upstreamOf(double, () =>
      s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst', CopySource: `${bucket}/src`, ...copySourceSse(a), ...sse(b) })),
    );
    assert.ok(!requests.some((r) => r.op === 'GetObject'), describeRequests(requests));
    assert.ok((await read('dst', b)).equals(data));
    assert.ok((await read('src', a)).equals(data));
    await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'dst', ...sse(a) })), 'AccessDenied', 403);
    // The copy needs the source's key.
    await rejectsWith(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst2', CopySource: `${bucket}/src`, ...sse(b) })), 'InvalidRequest', 400);
  });
});

describe('plain → SSE-C', () => {
  test('the copy is encrypted at rest and reads back with the key only', async () => {
    const k = newKey();
    const data = withMarker(randomBytes(C + 300), marker, [0, C]);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain', Body: data }));
    assert.ok(double.objects.get(bucket, 'plain')!.body.equals(data));
    const requests = await upstreamOf(double, () => s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'sealed', CopySource: `${bucket}/plain`, ...sse(k) })));
    // The bytes change, so they pass through the proxy: a read of the source and a write of the ciphertext.
    const trace = describeRequests(requests);
    assert.ok(requests.some((r) => r.op === 'GetObject' && r.path === `/${bucket}/plain`), trace);
    const put = requests.find((r) => r.op === 'PutObject' && r.path === `/${bucket}/sealed`);
    assert.ok(put && put.bodyBytesIn > data.length, trace);

    const stored = double.objects.get(bucket, 'sealed')!;
    assert.equal(stored.body.indexOf(marker), -1);
    assert.ok((await read('sealed', k)).equals(data));
    await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'sealed' })), 'InvalidRequest', 400);
    await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'sealed', ...sse(newKey()) })), 'AccessDenied', 403);
    assert.ok((await read('plain')).equals(data));
  });
});
