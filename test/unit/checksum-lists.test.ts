/**
 * The checksum algorithms are index-encoded in stored data (tail records, sealed checksums, upload ids and
 * part ETags), through two lists: S3's (s3/checksums.ts) and the format's (format/tail.ts). A reorder or an
 * insertion would silently misread stored objects: the two are pinned equal, and to their stored order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHECKSUM_NAMES } from '../../src/s3/checksums.ts';
import { TAIL_ALGORITHMS } from '../../src/format/tail.ts';

test('S3 checksum names and the format tail algorithms are the same list, in the stored order', () => {
  assert.deepEqual([...CHECKSUM_NAMES], [...TAIL_ALGORITHMS]);
  // The order written by every object stored so far (docs/FORMAT.md §5.6): never change it, only append.
  assert.deepEqual([...TAIL_ALGORITHMS], ['crc32', 'crc32c', 'crc64nvme', 'sha1', 'sha256']);
});
