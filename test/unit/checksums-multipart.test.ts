/** Multipart object checksums: COMPOSITE from the parts' digests, FULL_OBJECT by combining the parts' CRCs. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { combineCrcs, compositeChecksum, createChecksum, type ChecksumName } from '../../src/s3/checksums.ts';

async function digest(name: ChecksumName, data: Buffer): Promise<Buffer> {
  const c = createChecksum(name);
  c.update(data);
  return Buffer.from(await c.digest(), 'base64');
}

test('FULL_OBJECT: combining the parts\' CRCs gives the CRC of the whole, for CRC32, CRC32C and CRC64NVME', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 70_000 }), { minLength: 1, maxLength: 6 }), async (sizes) => {
      const parts = sizes.map((n) => randomBytes(n));
      for (const name of ['crc32', 'crc32c', 'crc64nvme'] as const) {
        const combined = combineCrcs(name, await Promise.all(parts.map(async (p) => ({ digest: await digest(name, p), length: p.length }))));
        assert.equal(combined, (await digest(name, Buffer.concat(parts))).toString('base64'), `${name} ${JSON.stringify(sizes)}`);
      }
    }),
    { numRuns: 40 },
  );
  assert.throws(() => combineCrcs('sha256', []), RangeError);
});

test('COMPOSITE: the algorithm over the concatenated raw part digests, then -N (S3\'s documented form)', async () => {
  const parts = [randomBytes(100), randomBytes(200)];
  const ds = await Promise.all(parts.map((p) => digest('sha256', p)));
  const expected = `${(await digest('sha256', Buffer.concat(ds))).toString('base64')}-2`;
  assert.equal(await compositeChecksum('sha256', ds), expected);
});
