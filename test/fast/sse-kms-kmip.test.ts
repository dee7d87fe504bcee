/**
 * SSE-S3 and SSE-KMS through the proxy over the in-memory S3 double, with the `kmip` KMS on a real KMIP server
 * (PyKMIP): objects are stored as ciphertext and read back whole, by range and copied; a new master key version
 * seals new objects while old ones still read, and a copy onto itself re-wraps under it without moving the body;
 * a revoked master key refuses its objects with the KMS's error until its bytes are registered again; a destroyed
 * one leaves them unreadable; a KMIP server that is down or hangs is S3's retryable 503, and is used again once back.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CopyObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { bodyBytes } from '../support/proxy.ts';
import { startKmipServer, type KmipServer } from '../support/kmip.ts';
import type { S3Double } from '../support/s3-double.ts';
import { rejectsWith, startFast, withMarker, type Fast } from './harness.ts';

const bucket = 'kmip-objects';
const C = 65536;
const marker = randomBytes(32);
const data = withMarker(randomBytes(2 * C + 33), marker, [0, C + 1]);

let kmip: KmipServer;
let fast: Fast;
let s3: S3Client;
let double: S3Double;

before(async () => {
  kmip = await startKmipServer();
  for (const k of ['site-key', 'team-key', 'rotated-key', 'locked-key', 'doomed-key']) await kmip.createKey(k);
  fast = await startFast({ buckets: [bucket], env: kmip.env('site-key') });
  ({ s3, double } = fast);
});
after(async () => {
  await fast?.close();
  await kmip?.close();
});

const read = async (Key: string, extra: Record<string, unknown> = {}) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key, ...extra }))).Body);
const putKms = (Key: string, SSEKMSKeyId: string) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: data, ServerSideEncryption: 'aws:kms', SSEKMSKeyId }));

function assertCiphertextAtRest(key: string): void {
  const stored = double.objects.get(bucket, key)!;
  assert.ok(stored.body.length > data.length, 'stored bytes carry the format overhead');
  assert.equal(stored.body.indexOf(marker), -1, 'the plaintext marker is not in the stored bytes');
}

/** The stored sealed key's blob version and master key version. */
function blobOf(key: string): { blobVersion: number; keyVersion: number } {
  const meta = double.objects.get(bucket, key)!.metadata['s3-ssec-proxy-kms']!;
  const blob = Buffer.from(meta.split(';')[3]!, 'base64url');
  return { blobVersion: blob[0]!, keyVersion: blob.readUInt32BE(1) };
}

describe('SSE-S3 and SSE-KMS with a KMIP server', () => {
  test('PUT, GET, ranged GET, HEAD and copy; ciphertext at rest; the sealed key is a KMIP blob', async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 's3.bin', Body: data, ServerSideEncryption: 'AES256' }));
    assert.equal(put.ServerSideEncryption, 'AES256');
    assertCiphertextAtRest('s3.bin');
    assert.match(double.objects.get(bucket, 's3.bin')!.metadata['s3-ssec-proxy-kms']!, /^1;AES256;site-key;[A-Za-z0-9_-]+$/);
    assert.deepEqual(blobOf('s3.bin'), { blobVersion: 3, keyVersion: 1 });
    assert.deepEqual(await read('s3.bin'), data);
    assert.deepEqual(await read('s3.bin', { Range: `bytes=${C - 5}-${C + 40}` }), data.subarray(C - 5, C + 41));

    await putKms('kms.bin', 'team-key');
    assertCiphertextAtRest('kms.bin');
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'kms.bin' }));
    assert.equal(head.ContentLength, data.length);
    assert.equal(head.SSEKMSKeyId, 'team-key');
    assert.deepEqual(await read('kms.bin'), data);

    const copied = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy.bin', CopySource: `${bucket}/kms.bin`, ServerSideEncryption: 'AES256' }));
    assert.equal(copied.ServerSideEncryption, 'AES256');
    assertCiphertextAtRest('copy.bin');
    assert.deepEqual(await read('copy.bin'), data);

    await rejectsWith(putKms('none.bin', 'no-such-key'), 'KMS.NotFoundException', 400);
  });

  test('rotation: a new version seals new objects, old ones still read, a copy onto itself re-wraps without moving the body', async () => {
    await putKms('old.bin', 'rotated-key');
    assert.equal(blobOf('old.bin').keyVersion, 1);
    await kmip.createKey('rotated-key', 2);
    await putKms('new.bin', 'rotated-key');
    assert.equal(blobOf('new.bin').keyVersion, 2);
    assert.deepEqual(await read('old.bin'), data);
    assert.deepEqual(await read('new.bin'), data);

    const body = Buffer.from(double.objects.get(bucket, 'old.bin')!.body);
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'old.bin', CopySource: `${bucket}/old.bin`, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'rotated-key' }));
    assert.deepEqual(double.objects.get(bucket, 'old.bin')!.body, body, 'the ciphertext is unchanged');
    assert.equal(blobOf('old.bin').keyVersion, 2, 're-wrapped under the newest version');
    assert.deepEqual(await read('old.bin'), data);
  });

  test('a revoked master key refuses its objects (KMS.DisabledException); its bytes registered again restore them', async () => {
    await putKms('locked.bin', 'locked-key');
    await kmip.revokeKey('locked-key');
    await rejectsWith(read('locked.bin'), 'KMS.DisabledException', 400);
    await rejectsWith(putKms('locked2.bin', 'locked-key'), 'KMS.DisabledException', 400);
    assert.equal(double.objects.get(bucket, 'locked2.bin'), undefined);
    // KMIP has no Deactivated → Active: the operator registers the same key bytes again, same Name and version.
    await kmip.reinstateKey('locked-key');
    assert.deepEqual(await read('locked.bin'), data);
  });

  test('a destroyed master key leaves its objects unreadable (KMS.NotFoundException)', async () => {
    await putKms('doomed.bin', 'doomed-key');
    await kmip.destroyKey('doomed-key');
    await rejectsWith(read('doomed.bin'), 'KMS.NotFoundException', 400);
    assertCiphertextAtRest('doomed.bin');
  });

  test('the KMIP server stopped: S3\'s retryable 503, nothing stored; started again: objects read and write', async () => {
    for (const k of ['a.bin', 'b.bin']) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: data, ServerSideEncryption: 'AES256' }));
    await kmip.stop();
    try {
      // b.bin was never read: its key is not cached, the server must be asked.
      await rejectsWith(read('b.bin'), 'KMS.DependencyTimeoutException', 503);
      await rejectsWith(
        s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'c.bin', Body: data, ServerSideEncryption: 'AES256' })),
        'KMS.DependencyTimeoutException',
        503,
      );
      assert.equal(double.objects.get(bucket, 'c.bin'), undefined);
    } finally {
      await kmip.start();
    }
    assert.deepEqual(await read('b.bin'), data);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'c.bin', Body: data, ServerSideEncryption: 'AES256' }));
    assert.deepEqual(await read('c.bin'), data);
  });

  test('the KMIP server hanging (stopped by SIGSTOP): a 503 once the KMIP call times out, not a hung request', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'h.bin', Body: data, ServerSideEncryption: 'AES256' }));
    kmip.pause();
    try {
      await rejectsWith(read('h.bin'), 'KMS.DependencyTimeoutException', 503);
    } finally {
      kmip.resume();
    }
    assert.deepEqual(await read('h.bin'), data);
  });
});
