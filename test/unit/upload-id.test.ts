/**
 * Upload ids (docs/MULTIPART.md): version 3 carries the upload's random value, so each upload has its own data
 * key; the tag binds every field, the random value included; ids of versions 1 and 2 keep working with the
 * data key their uploads were created with.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { clientUploadId, multipartDataKey, newUploadNonce, parseUploadId, tagMatches, UPLOAD_NONCE_BYTES } from '../../src/sse-c/upload-id.ts';

const customerKey = randomBytes(32);

test('version 3: parsed back with its fields and random value; the tag matches only that upload\'s data key', () => {
  const nonce = newUploadNonce();
  assert.equal(nonce.length, UPLOAD_NONCE_BYTES);
  const dk = multipartDataKey(customerKey, 'b', 'k', nonce);
  const id = clientUploadId('UPSTREAM-ID.1', dk, 16, { algorithm: 'crc32', type: 'FULL_OBJECT' }, nonce);
  assert.match(id, /^UPSTREAM-ID\.1\.ssec3\./);
  const parsed = parseUploadId(id);
  assert.equal(parsed.upstreamId, 'UPSTREAM-ID.1');
  assert.equal(parsed.version, 3);
  assert.equal(parsed.chunkSizeLog2, 16);
  assert.equal(parsed.tails, true);
  assert.deepEqual(parsed.checksum, { algorithm: 'crc32', type: 'FULL_OBJECT' });
  assert.ok(parsed.nonce?.equals(nonce));
  assert.ok(tagMatches(parsed, multipartDataKey(customerKey, 'b', 'k', parsed.nonce)));
  // Another upload of the same name under the same key has another data key.
  assert.ok(!multipartDataKey(customerKey, 'b', 'k', newUploadNonce()).equals(dk));
  assert.ok(!tagMatches(parsed, multipartDataKey(customerKey, 'b', 'k')), 'the shared (version 2) key');
  assert.ok(!tagMatches(parsed, multipartDataKey(randomBytes(32), 'b', 'k', parsed.nonce)), 'another customer key');
});

test('version 3: an id whose random value (or any field) was edited fails the tag', () => {
  const nonce = newUploadNonce();
  const dk = multipartDataKey(customerKey, 'b', 'k', nonce);
  const id = clientUploadId('U', dk, 16, undefined, nonce);
  const suffix = Buffer.from(id.slice('U.ssec3.'.length), 'base64url');
  for (const at of [16, 17, 18, 19, 19 + UPLOAD_NONCE_BYTES - 1]) {
    const edited = Buffer.from(suffix);
    edited[at] = at === 16 ? 17 : edited[at]! ^ 1; // chunk size 16 → 17 stays valid
    const parsed = parseUploadId(`U.ssec3.${edited.toString('base64url')}`);
    if (parsed.tag === undefined) continue; // no longer an id of ours at all: refused as bare
    assert.ok(!tagMatches(parsed, multipartDataKey(customerKey, 'b', 'k', parsed.nonce)), `byte ${at}`);
  }
});

test('version 2 ids (issued before) still parse and match the shared data key of their name', () => {
  const dk = multipartDataKey(customerKey, 'b', 'k');
  const fields = Buffer.of(16, 0, 0);
  const lp = (s: string) => Buffer.concat([Buffer.from([0, 0, 0, s.length]), Buffer.from(s)]);
  const tag = createHmac('sha256', dk).update('s3-ssec-proxy/v1/upload-tag').update(lp('U')).update(Buffer.concat([fields, Buffer.of(2)])).digest().subarray(0, 16);
  const parsed = parseUploadId(`U.ssec2.${Buffer.concat([tag, fields]).toString('base64url')}`);
  assert.equal(parsed.version, 2);
  assert.equal(parsed.nonce, undefined);
  assert.ok(tagMatches(parsed, multipartDataKey(customerKey, 'b', 'k', parsed.nonce)));
});
