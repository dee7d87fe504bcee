/**
 * Multipart layouts as the store holds them (each part its own stream, concatenated): the layout probe finds
 * the plaintext size and, for unaligned parts, the part table from the chunk headers alone; every range then
 * maps to one ciphertext range that decrypts to exactly the requested plaintext.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { isAlignedLayout } from '../../src/format/layout.ts';
import { decryptBuffer, encryptBuffer } from '../../src/format/stream.ts';
import { Readable, type Transform } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { sealTail } from '../../src/format/tail.ts';
import { memoryReader } from '../support/bytes.ts';
import { decryptStages, layoutFromReads, planRange, planWhole, SPECULATIVE_READS, tailLayoutFromReads } from '../../src/format/parts.ts';

const C = 4096;

function build(sizes: number[], firstPart: number) {
  const dataKey = randomBytes(32);
  const plains = sizes.map((n) => randomBytes(n));
  const ciphers = plains.map((p, i) => encryptBuffer(p, { dataKey, chunkSize: C, partNumber: firstPart + i * 2 }));
  const cipher = Buffer.concat(ciphers);
  return { dataKey, plain: Buffer.concat(plains), cipher, ...memoryReader(cipher) };
}

// Part sizes: non-last parts are either aligned (k·C) or not (k·C + r); the last part is anything.
const layouts = fc
  .tuple(
    // (S3 wants non-last parts >= 5 MiB; the format and the probe do not rely on it, so small ones are tried too.)
    fc.array(
      fc
        .tuple(fc.integer({ min: 0, max: 4 }), fc.oneof(fc.constant(0), fc.integer({ min: 1, max: C - 1 })))
        .filter(([k, r]) => k * C + r > 0),
      { minLength: 0, maxLength: 4 },
    ),
    fc.integer({ min: 0, max: 3 * C + 5 }),
    fc.integer({ min: 1, max: 50 }),
  )
  .map(([body, last, firstPart]) => ({ sizes: [...body.map(([k, r]) => k * C + r), last], firstPart }));

test('the probe finds the plaintext size and a part table exactly when the parts are unaligned', async () => {
  await fc.assert(
    fc.asyncProperty(layouts, async ({ sizes, firstPart }) => {
      const o = build(sizes, firstPart);
      const layout = await layoutFromReads(o.read, o.cipher.length, C, sizes.length > 1);
      assert.equal(layout.plainSize, o.plain.length);
      assert.equal(layout.parts === undefined, isAlignedLayout(sizes, C));
      if (layout.parts) assert.deepEqual(layout.parts.map((p) => p.plainSize), sizes);
      if (isAlignedLayout(sizes, C)) assert.ok(o.reads() <= sizes.length + 1, `aligned probe used ${o.reads()} reads`);
      const whole = decryptBuffer(o.cipher, { dataKey: o.dataKey, chunkSize: C, ...planWhole().decrypt });
      assert.ok(whole.equals(o.plain));
    }),
    { numRuns: 200 },
  );
});

test('any range of any layout is one ciphertext range that decrypts to exactly that plaintext', async () => {
  await fc.assert(
    fc.asyncProperty(layouts, fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 1, max: 3 * C }), async ({ sizes, firstPart }, at, len) => {
      const o = build(sizes, firstPart);
      fc.pre(o.plain.length > 0);
      const layout = await layoutFromReads(o.read, o.cipher.length, C, true);
      const a = at % o.plain.length;
      const b = Math.min(o.plain.length - 1, a + len - 1);
      const plan = planRange(layout, a, b, C);
      const slice = o.cipher.subarray(plan.cipherStart, plan.cipherEndInclusive + 1);
      // Never more than one chunk beyond the requested bytes at each end.
      assert.ok(slice.length <= b - a + 1 + 2 * (C + 40) * Math.max(1, sizes.length));
      const got = decryptBuffer(slice, { dataKey: o.dataKey, chunkSize: C, ...plan.decrypt });
      assert.ok(got.equals(o.plain.subarray(a, b + 1)), `range ${a}-${b} of ${JSON.stringify(sizes)}`);
    }),
    { numRuns: 200 },
  );
});

test('headers spliced from another object break the walk (integrity error), they never yield a layout', async () => {
  const a = build([C + 1, 7], 1);
  const b = build([C + 1, 7], 1);
  const mixed = Buffer.concat([a.cipher.subarray(0, 10), b.cipher.subarray(10)]);
  await assert.rejects(layoutFromReads(async (o, l) => mixed.subarray(o, o + l), mixed.length, C, true), /integrity/);
  assert.throws(() => decryptBuffer(mixed, { dataKey: a.dataKey, chunkSize: C, ...planWhole().decrypt }));
});

test('regression: grid shifts that add up to a whole chunk before an aligned part are not taken for aligned', async () => {
  // Parts of C+1 and C-41 bytes shift the grid by 41 and 4095 bytes: 4136 = one whole chunk (C+40).
  const sizes = [C + 1, C - 41, C, 100];
  const o = build(sizes, 1);
  const layout = await layoutFromReads(o.read, o.cipher.length, C, true);
  assert.equal(layout.plainSize, o.plain.length);
  assert.deepEqual(layout.parts?.map((p) => p.plainSize), sizes);
});

/** The same layouts as stored by uploads with tail records (docs/FORMAT.md §5.6). */
function buildTailed(sizes: number[], firstPart: number) {
  const dataKey = randomBytes(32);
  const plains = sizes.map((n) => randomBytes(n));
  const stored = plains.flatMap((p, i) => {
    const partNumber = firstPart + i * 2;
    return [encryptBuffer(p, { dataKey, chunkSize: C, partNumber }), sealTail(dataKey, { partNumber, plainSize: p.length, algorithm: 'crc32', digest: Buffer.alloc(4, i) })];
  });
  const cipher = Buffer.concat(stored);
  return { dataKey, plain: Buffer.concat(plains), cipher, ...memoryReader(cipher) };
}

async function decryptPlanned(slice: Buffer, plan: Parameters<typeof decryptStages>[0], dataKey: Buffer): Promise<Buffer> {
  const stages = decryptStages(plan, dataKey, C);
  return buffer((stages as Transform[]).reduce<NodeJS.ReadableStream>((s, t) => s.pipe(t), Readable.from([slice])));
}

test('tail records: the part table in one read per part, authenticated with the key; any range and the whole object decrypt', async () => {
  await fc.assert(
    fc.asyncProperty(layouts, fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 1, max: 3 * C }), async ({ sizes, firstPart }, at, len) => {
      const o = buildTailed(sizes, firstPart);
      const layout = await tailLayoutFromReads(o.read, o.cipher.length, C, o.dataKey);
      assert.ok(o.reads() <= sizes.length + SPECULATIVE_READS, `${o.reads()} reads for ${sizes.length} parts`);
      assert.equal(layout.plainSize, o.plain.length);
      assert.deepEqual(layout.parts?.map((p) => p.plainSize), sizes);
      assert.deepEqual(layout.parts?.map((p) => p.checksum?.digest[0]), sizes.map((_, i) => i));
      const keyless = await tailLayoutFromReads(o.read, o.cipher.length, C);
      assert.equal(keyless.plainSize, o.plain.length);
      assert.equal(keyless.verified, false);
      assert.ok((await decryptPlanned(o.cipher, planWhole(layout), o.dataKey)).equals(o.plain));
      fc.pre(o.plain.length > 0);
      const a = at % o.plain.length;
      const b = Math.min(o.plain.length - 1, a + len - 1);
      const plan = planRange(layout, a, b, C);
      const got = await decryptPlanned(o.cipher.subarray(plan.cipherStart, plan.cipherEndInclusive + 1), plan, o.dataKey);
      assert.ok(got.equals(o.plain.subarray(a, b + 1)), `range ${a}-${b} of ${JSON.stringify(sizes)}`);
    }),
    { numRuns: 200 },
  );
});

test('tail records: an edited size fails authentication with the key; garbage where a record belongs is an integrity error', async () => {
  const o = buildTailed([C, C + 5, 100], 1);
  const edited = Buffer.from(o.cipher);
  const lastTail = edited.length - 80;
  edited.writeBigUInt64BE(99n, lastTail + 4); // claim 99 bytes instead of 100
  const read = async (off: number, l: number) => edited.subarray(off, off + l);
  await assert.rejects(tailLayoutFromReads(read, edited.length, C, o.dataKey), /integrity/);
  const garbage = Buffer.from(o.cipher);
  garbage.fill(0, lastTail, lastTail + 80);
  await assert.rejects(tailLayoutFromReads(async (off, l) => garbage.subarray(off, off + l), garbage.length, C), /integrity/);
});

test('tail records of equal parts are read in parallel batches: one read per part, whatever the count', async () => {
  for (const n of [1, 2, 3, 17, 40]) {
    const sizes = [...Array.from({ length: n - 1 }, () => 2 * C), 123];
    const o = buildTailed(sizes, 1);
    let inFlight = 0;
    let maxInFlight = 0;
    const read = async (offset: number, length: number) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      return o.read(offset, length);
    };
    const layout = await tailLayoutFromReads(read, o.cipher.length, C, o.dataKey);
    assert.deepEqual(layout.parts?.map((p) => p.plainSize), sizes);
    assert.equal(o.reads(), n, `${n} parts`);
    if (n > 4) assert.ok(maxInFlight > 1, 'reads overlap');
  }
  // Unequal parts after an equal pair: the guess stops at the first misfit and the walk still ends exact.
  const mixed = [C, 3 * C + 7, 2 * C, 2 * C, 2 * C, 99];
  const o = buildTailed(mixed, 3);
  const layout = await tailLayoutFromReads(o.read, o.cipher.length, C, o.dataKey);
  assert.deepEqual(layout.parts?.map((p) => p.plainSize), mixed);
});
