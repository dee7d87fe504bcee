/** The client checksum sealed in metadata (docs/FORMAT.md §5.6), and the metadata that announces a tail record. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TAIL_SIZE } from '../../src/format/tail.ts';
import { checksumTailOf, openChecksum, sealChecksum, tailSizeOf } from '../../src/sse-c/sealed-checksum.ts';

const DK = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const META = 'crc32.z12VfBbFM218suDWIaU7ish4d_rbxz5k';

test('the documented metadata vector', () => {
  assert.equal(sealChecksum(DK, 'crc32', 'rVnXbw=='), META);
  assert.deepEqual(openChecksum(DK, META), { algorithm: 'crc32', value: 'rVnXbw==' });
});

test('a sealed value opens only with its data key and unedited', () => {
  const otherKey = Buffer.from(DK);
  otherKey[0]! ^= 1;
  assert.equal(openChecksum(otherKey, META), undefined);
  assert.equal(openChecksum(DK, META.replace('crc32.', 'crc32c.')), undefined, 'algorithm is authenticated');
  assert.equal(openChecksum(DK, `${META.slice(0, -1)}A`), undefined);
});

test('the metadata announces a tail record: `<algorithm>.tail`', () => {
  const meta = 'x-amz-meta-s3-ssec-proxy-checksum';
  assert.equal(checksumTailOf({ [meta]: 'crc32.tail' }), 'crc32');
  assert.equal(tailSizeOf({ [meta]: 'sha256.tail' }), TAIL_SIZE);
  assert.equal(tailSizeOf({ [meta]: META }), 0, 'a metadata-sealed value has no record');
  assert.equal(tailSizeOf({ [meta]: 'md5.tail' }), 0, 'unknown algorithms are not taken as a record');
  assert.equal(tailSizeOf({}), 0);
});
