/**
 * Bodies up to 64 KiB are handled whole (issue 13, small requests): an upload is checked before anything of it
 * reaches the store, and a GET answer is verified before its status line. Chunks of 4 KiB here, so a small
 * object has several.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { bodyBytes, newKey, openSsecPut, sse } from '../support/proxy.ts';
import { rejectsWith, startFast, type Fast } from './harness.ts';

const bucket = 'small-bodies';
const key = newKey();
const C = 4096;
const OVERHEAD = 40;
const data = randomBytes(2 * C + 100);
let fast: Fast;

before(async () => {
  fast = await startFast({ chunkSizeLog2: 12, buckets: [bucket] });
});
after(async () => fast?.close());

describe('a small object', () => {
  test('whose later chunk fails its check is S3\'s 500 InternalError, not a 200 whose body is cut', async () => {
    await fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'later-tampered', Body: data, ...sse(key) }));
    const ok = await fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'later-tampered', ...sse(key) }));
    assert.ok((await bodyBytes(ok.Body)).equals(data));
    fast.double.objects.get(bucket, 'later-tampered')!.body[C + OVERHEAD + 24 + 7]! ^= 0x01;
    await rejectsWith(fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'later-tampered', ...sse(key) })), 'InternalError', 500);
    await rejectsWith(fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'later-tampered', Range: `bytes=0-${C + 10}`, ...sse(key) })), 'InternalError', 500);
  });

  test('arriving in parts reaches the store only once all of it is in and checked; then it is stored', async () => {
    fast.double.resetRequests();
    const req = await openSsecPut(fast.proxy, fast.double, `/${bucket}/in-parts`, key, data.length);
    const answered = new Promise<number>((resolve) => req.on('response', (res) => (res.resume(), resolve(res.statusCode ?? 0))));
    req.write(data.subarray(0, 2 * C + 50));
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(fast.double.requests.filter((r) => r.path.endsWith('/in-parts')).map((r) => `${r.method} ${r.path}`), []);
    req.end(data.subarray(2 * C + 50));
    assert.equal(await answered, 200);
    const got = await fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'in-parts', ...sse(key) }));
    assert.ok((await bodyBytes(got.Body)).equals(data));
  });

  test('uploaded with a wrong Content-MD5 is 400 BadDigest, and the store never saw a request for it', async () => {
    fast.double.resetRequests();
    const wrong = createHash('md5').update('something else').digest('base64');
    await rejectsWith(fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'bad-md5', Body: data, ContentMD5: wrong, ...sse(key) })), 'BadDigest', 400);
    assert.deepEqual(fast.double.requests.filter((r) => r.path.endsWith('/bad-md5')).map((r) => `${r.method} ${r.path}`), []);
    assert.equal(fast.double.objects.get(bucket, 'bad-md5'), undefined);
  });
});
