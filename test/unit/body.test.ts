/**
 * The upload body stages: whatever fails at the end (checksum trailer, digest, length) must fail before the
 * last bytes reach the upstream, so the upstream can never complete the upload.
 */
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { exactLength } from '../../src/sigv4/body.ts';
import { holdBack } from '../../src/objects/write.ts';
import { createChecksumCheck } from '../../src/s3/checksums.ts';

async function run(stages: NodeJS.ReadWriteStream[], pieces: Buffer[]) {
  let received = 0;
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      received += c.length;
      cb();
    },
  });
  const result = await pipeline(Readable.from(pieces), ...(stages as [NodeJS.ReadWriteStream]), sink).then(
    () => 'ok',
    (e: Error) => e.message,
  );
  return { result, received };
}

test('with the hold-back last, a checksum that fails at the end lets the upstream never see the last bytes', async () => {
  const pieces = [Buffer.alloc(1000, 1), Buffer.alloc(1000, 2), Buffer.alloc(10, 3)];
  const bad = await run([exactLength(2010), createChecksumCheck('crc32', () => 'AAAAAA=='), holdBack()], pieces);
  assert.match(bad.result, /CRC32/);
  assert.ok(bad.received < 2010, `upstream saw ${bad.received} of 2010 bytes`);
  // Without it, every byte is gone before the failure: that is why uploads end with it (or the encryptor).
  const unprotected = await run([exactLength(2010), createChecksumCheck('crc32', () => 'AAAAAA==')], pieces);
  assert.equal(unprotected.received, 2010);
  const good = await run([exactLength(2010), holdBack()], pieces);
  assert.deepEqual(good, { result: 'ok', received: 2010 });
});

test('a short body fails with IncompleteBody before the end reaches the upstream', async () => {
  const r = await run([exactLength(3000), holdBack()], [Buffer.alloc(1000), Buffer.alloc(1000)]);
  assert.match(r.result, /Content-Length/);
  assert.ok(r.received < 2000);
});
