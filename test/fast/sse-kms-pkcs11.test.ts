/**
 * SSE-S3 and SSE-KMS through the proxy over the in-memory S3 double, with the `pkcs11` KMS on a real SoftHSM2
 * token: objects are stored as ciphertext and read back whole, by range and copied; a master key disabled on
 * the token refuses its objects with the KMS's error until enabled again; a token that drops its sessions is
 * reopened unnoticed, one that refuses the proxy's PIN is S3's retryable 503 until it accepts it again.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CopyObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { bodyBytes } from '../support/proxy.ts';
import { createSoftHsm, type SoftHsm } from '../support/softhsm.ts';
import type { S3Double } from '../support/s3-double.ts';
import { rejectsWith, startFast, withMarker, type Fast } from './harness.ts';

const bucket = 'p11-objects';
const C = 65536;
const marker = randomBytes(32);
const data = withMarker(randomBytes(2 * C + 33), marker, [0, C + 1]);

let hsm: SoftHsm;
let fast: Fast;
let s3: S3Client;
let double: S3Double;

before(async () => {
  hsm = createSoftHsm('kms-fast');
  for (const k of ['site-key', 'team-key']) hsm.createKey(k);
  fast = await startFast({
    buckets: [bucket],
    env: {
      SSEC_PROXY_KMS_PKCS11_MODULE: hsm.module,
      SSEC_PROXY_KMS_PKCS11_TOKEN: hsm.label,
      SSEC_PROXY_KMS_PKCS11_PIN: hsm.pin,
      SSEC_PROXY_KMS_DEFAULT_KEY: 'site-key',
    },
  });
  ({ s3, double } = fast);
});
after(async () => fast?.close());

const read = async (Key: string, extra: Record<string, unknown> = {}) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key, ...extra }))).Body);

function assertCiphertextAtRest(key: string): void {
  const stored = double.objects.get(bucket, key)!;
  assert.ok(stored.body.length > data.length, 'stored bytes carry the format overhead');
  assert.equal(stored.body.indexOf(marker), -1, 'the plaintext marker is not in the stored bytes');
}

describe('SSE-S3 and SSE-KMS with a PKCS#11 token', () => {
  test('PUT, GET, ranged GET and copy; ciphertext at rest; the sealed key is a PKCS#11 blob', async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 's3.bin', Body: data, ServerSideEncryption: 'AES256' }));
    assert.equal(put.ServerSideEncryption, 'AES256');
    assertCiphertextAtRest('s3.bin');
    const meta = double.objects.get(bucket, 's3.bin')!.metadata['s3-ssec-proxy-kms']!;
    assert.match(meta, /^1;AES256;site-key;[A-Za-z0-9_-]+$/);
    assert.equal(Buffer.from(meta.split(';')[3]!, 'base64url')[0], 2, 'blob version 2 (PKCS#11)');
    assert.deepEqual(await read('s3.bin'), data);
    assert.deepEqual(await read('s3.bin', { Range: `bytes=${C - 5}-${C + 40}` }), data.subarray(C - 5, C + 41));

    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'kms.bin', Body: data, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'team-key' }));
    assertCiphertextAtRest('kms.bin');
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'kms.bin' }));
    assert.equal(got.SSEKMSKeyId, 'team-key');
    assert.deepEqual(await bodyBytes(got.Body), data);

    const copied = await s3.send(
      new CopyObjectCommand({ Bucket: bucket, Key: 'copy.bin', CopySource: `${bucket}/kms.bin`, ServerSideEncryption: 'AES256' }),
    );
    assert.equal(copied.ServerSideEncryption, 'AES256');
    assertCiphertextAtRest('copy.bin');
    assert.deepEqual(await read('copy.bin'), data);

    await rejectsWith(
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'none.bin', Body: data, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'no-such-label' })),
      'KMS.NotFoundException',
      400,
    );
  });

  test('a master key disabled on the token refuses its objects (KMS.DisabledException) until enabled again', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'team.bin', Body: data, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'team-key' }));
    hsm.setUsable('team-key', false);
    try {
      await rejectsWith(read('team.bin'), 'KMS.DisabledException', 400);
      await rejectsWith(
        s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'team2.bin', Body: data, ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'team-key' })),
        'KMS.DisabledException',
        400,
      );
    } finally {
      hsm.setUsable('team-key', true);
    }
    assert.deepEqual(await read('team.bin'), data);
  });

  test('sessions closed by the token are reopened; a refused PIN is S3\'s 503 until the token accepts it again', async () => {
    for (const k of ['a.bin', 'b.bin', 'c.bin']) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: data, ServerSideEncryption: 'AES256' }));
    hsm.closeAllSessions();
    assert.deepEqual(await read('a.bin'), data);

    const pin = hsm.pin;
    hsm.changePin(pin, `${pin}-rotated`);
    try {
      // b.bin was never read: its key is not cached, the token must be asked.
      await rejectsWith(read('b.bin'), 'KMS.DependencyTimeoutException', 503);
      await rejectsWith(
        s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'd.bin', Body: data, ServerSideEncryption: 'AES256' })),
        'KMS.DependencyTimeoutException',
        503,
      );
      assert.equal(double.objects.get(bucket, 'd.bin'), undefined);
      assert.ok(!JSON.stringify(fast.proxy.logs).includes(pin), 'the PIN is in a log line');
    } finally {
      hsm.changePin(`${pin}-rotated`, pin);
    }
    assert.deepEqual(await read('b.bin'), data);
    assert.deepEqual(await read('c.bin'), data);
  });
});
