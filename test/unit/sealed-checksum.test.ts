/** The sealed client checksum: metadata form and tail record, against the vectors in docs/FORMAT.md §5.6. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checksumTailOf,
  openChecksum,
  openChecksumTail,
  sealChecksum,
  sealChecksumTail,
  TAIL_SIZE,
  tailSizeOf,
} from '../../src/sse-c/sealed-checksum.ts';

const DK = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const META = 'crc32.z12VfBbFM218suDWIaU7ish4d_rbxz5k';
const TAIL =
  '81736d725cf812d509d04685a47b4cc8d372ebcc976170e9bf2e3153e6670d1b4fee65d78a7aa6112d609409d1196ecb307642221c1e741abf303bee964c4107';

test('the documented vectors: metadata entry and 64-byte tail record', () => {
  assert.equal(sealChecksum(DK, 'crc32', 'rVnXbw=='), META);
  assert.equal(sealChecksumTail(DK, 'crc32', 'rVnXbw==').toString('hex'), TAIL);
  assert.deepEqual(openChecksum(DK, META), { algorithm: 'crc32', value: 'rVnXbw==' });
  assert.equal(openChecksumTail(DK, 'crc32', Buffer.from(TAIL, 'hex')), 'rVnXbw==');
});

test('a tail record opens only with its data key, algorithm and unmodified bytes', () => {
  const record = Buffer.from(TAIL, 'hex');
  const otherKey = Buffer.from(DK);
  otherKey[0]! ^= 1;
  assert.equal(openChecksumTail(otherKey, 'crc32', record), undefined);
  assert.equal(openChecksumTail(DK, 'crc32c', record), undefined, 'algorithm is authenticated');
  for (const i of [0, 47, 48, 63]) {
    const bad = Buffer.from(record);
    bad[i]! ^= 0x80;
    assert.equal(openChecksumTail(DK, 'crc32', bad), undefined, `byte ${i}`);
  }
  assert.equal(openChecksumTail(DK, 'crc32', record.subarray(1)), undefined);
});

test('every algorithm fits the record; the metadata announces it', () => {
  const sha256 = Buffer.alloc(32, 7).toString('base64');
  for (const [alg, value] of [['sha256', sha256], ['crc64nvme', 'AAAAAAAAAAA='], ['sha1', Buffer.alloc(20, 1).toString('base64')]] as const) {
    const rec = sealChecksumTail(DK, alg, value);
    assert.equal(rec.length, TAIL_SIZE);
    assert.equal(openChecksumTail(DK, alg, rec), value);
  }
  const meta = 'x-amz-meta-s3-ssec-proxy-checksum';
  assert.equal(checksumTailOf({ [meta]: 'crc32.tail' }), 'crc32');
  assert.equal(tailSizeOf({ [meta]: 'crc32.tail' }), TAIL_SIZE);
  assert.equal(tailSizeOf({ [meta]: META }), 0, 'a metadata-sealed value has no record');
  assert.equal(tailSizeOf({ [meta]: 'md5.tail' }), 0, 'unknown algorithms are not taken as a record');
  assert.equal(tailSizeOf({}), 0);
});
