import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { deriveStreamKeyBytes } from '../../src/format/chunk.ts';
import { encryptedSize, isAlignedLayout } from '../../src/format/layout.ts';
import { FORMAT_ERROR_CODES, FormatError, isFormatError } from '../../src/format/errors.ts';
import { createDecryptStream, createEncryptStream, decryptBuffer, encryptBuffer, wholeObjectRead } from '../../src/format/stream.ts';
import { deriveKek, openEnvelope, sealEnvelope } from '../../src/sse-c/envelope.ts';
import {
  VECTOR_DIR,
  applyMutations,
  decryptCollect,
  objectBody,
  objectPlaintext,
  vectorFiles,
  type GoldenFile,
  type TamperFile,
} from '../vectors/generate.ts';

const golden = JSON.parse(readFileSync(`${VECTOR_DIR}format-golden.json`, 'utf8')) as GoldenFile;
const tamper = JSON.parse(readFileSync(`${VECTOR_DIR}format-tamper.json`, 'utf8')) as TamperFile;
const spec = readFileSync(new URL('../../docs/FORMAT.md', import.meta.url), 'utf8');
const objects = golden.objects;
const hex = (s: string) => Buffer.from(s, 'hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** randomBytes that hands out recorded values in order, checking the requested sizes. */
function recorded(...values: Buffer[]): (n: number) => Buffer {
  return (n) => {
    const next = values.shift();
    assert.ok(next, `unexpected randomBytes(${n})`);
    assert.equal(n, next.length);
    return Buffer.from(next);
  };
}

async function pipe(pieces: Buffer[], t: Transform): Promise<{ out: Buffer; error: unknown }> {
  const chunks: Buffer[] = [];
  let error: unknown = null;
  try {
    await pipeline(Readable.from(pieces), t, async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) chunks.push(c);
    });
  } catch (err) {
    error = err;
  }
  return { out: Buffer.concat(chunks), error };
}

describe('golden vectors', () => {
  it('cover the required cases', () => {
    const names = objects.map((o) => o.name);
    for (const n of ['empty', 'one-byte', 'hundred-bytes', 'two-and-a-half-chunks', 'multipart', 'multipart-aligned']) assert.ok(names.includes(n), n);
    const aligned = objects.find((o) => o.name === 'multipart-aligned')!;
    const sizes = aligned.body.streams.map((n) => hex(aligned.streams.find((s) => s.name === n)!.plaintext).length);
    assert.ok(isAlignedLayout(sizes, 2 ** aligned.chunkSizeLog2));
    assert.equal(objectBody(objects, aligned).length, encryptedSize(sizes.reduce((x, y) => x + y, 0), 2 ** aligned.chunkSizeLog2));
    assert.equal(hex(objects.find((o) => o.name === 'two-and-a-half-chunks')!.streams[0]!.plaintext).length, 2.5 * 4096);
  });

  for (const o of objects) {
    describe(o.name, () => {
      const customerKey = hex(o.customerKey);
      const chunkSize = 2 ** o.chunkSizeLog2;

      it('KEK and envelope re-derive byte for byte', () => {
        assert.equal(deriveKek(customerKey, hex(o.kekSalt), o.bucket, o.key).toString('hex'), o.kek);
        const sealed = sealEnvelope({
          customerKey,
          bucket: o.bucket,
          key: o.key,
          chunkSizeLog2: o.chunkSizeLog2,
          randomBytes: recorded(hex(o.dataKey), hex(o.kekSalt)),
        });
        assert.equal(sealed.value, o.envelope);
        assert.equal(sealed.value.length, 112);
        const opened = openEnvelope(o.envelope, customerKey, o.bucket, o.key);
        assert.equal(opened.dataKey.toString('hex'), o.dataKey);
        assert.equal(opened.chunkSize, chunkSize);
        assert.equal(opened.version, 1);
      });

      for (const s of o.streams) {
        it(`stream ${s.name}: re-encrypts byte for byte (buffer and Transform) and decrypts`, async () => {
          const dataKey = hex(o.dataKey);
          assert.equal(deriveStreamKeyBytes(dataKey, hex(s.streamId), s.partNumber, o.chunkSizeLog2).toString('hex'), s.streamKey);
          const options = { dataKey, chunkSize, partNumber: s.partNumber };
          const ct = encryptBuffer(hex(s.plaintext), { ...options, randomBytes: recorded(hex(s.streamId)) });
          assert.equal(ct.toString('hex'), s.ciphertext);
          const streamed = await pipe([hex(s.plaintext)], createEncryptStream({ ...options, randomBytes: recorded(hex(s.streamId)) }));
          assert.equal(streamed.out.toString('hex'), s.ciphertext);
          const segments = [{ partNumber: s.partNumber, firstChunk: 0, chunkCount: null, endsWithFinal: true }];
          assert.equal(decryptBuffer(hex(s.ciphertext), { dataKey, chunkSize, segments }).toString('hex'), s.plaintext);
        });
      }

      it('the stored body decrypts with its segments', () => {
        const body = objectBody(objects, o);
        assert.equal(sha256(body), o.body.sha256);
        const pt = decryptBuffer(body, { dataKey: hex(o.dataKey), chunkSize, segments: o.body.segments });
        assert.ok(pt.equals(objectPlaintext(o)));
      });

      it('the stored body also decrypts as a self-describing whole read (any layout)', () => {
        const pt = decryptBuffer(objectBody(objects, o), { dataKey: hex(o.dataKey), chunkSize, selfDescribing: wholeObjectRead() });
        assert.ok(pt.equals(objectPlaintext(o)));
      });
    });
  }

  it('FORMAT.md publishes the small vectors as they are committed', () => {
    const flat = spec.replace(/\s+/g, '');
    for (const o of objects.filter((x) => ['empty', 'one-byte', 'hundred-bytes'].includes(x.name))) {
      for (const value of [o.customerKey, o.dataKey, o.kekSalt, o.kek, o.envelope, o.streams[0]!.streamId, o.streams[0]!.streamKey, o.streams[0]!.ciphertext]) {
        assert.ok(flat.includes(value), `${o.name}: ${value.slice(0, 24)}... missing from docs/FORMAT.md`);
      }
    }
    for (const o of objects) assert.ok(flat.includes(o.body.sha256), `${o.name}: body sha256 missing from docs/FORMAT.md`);
  });
});

describe('tamper vectors', () => {
  it('name every envelope and chunk error code at least once (tail records: test/unit/format-tail.test.ts)', () => {
    const seen = new Set(tamper.vectors.map((v) => v.expect.error));
    for (const code of FORMAT_ERROR_CODES.filter((c) => !c.startsWith('Tail'))) assert.ok(seen.has(code), code);
  });

  for (const v of tamper.vectors) {
    it(`${v.name} (${v.region}) -> ${v.expect.error ?? 'undetected by design'}`, async () => {
      const o = objects.find((x) => x.name === v.object)!;
      const a = applyMutations(objects, o, v.mutations);
      if (v.expect.stage === 'envelope') {
        const code = v.expect.error;
        assert.throws(() => openEnvelope(a.envelope, a.customerKey, a.bucket, a.key), (e) => isFormatError(e, code));
        return;
      }
      const expect = v.expect;
      assert.equal(sha256(a.body), v.mutatedBodySha256);
      const { dataKey } = openEnvelope(a.envelope, a.customerKey, a.bucket, a.key);
      const chunkSize = 2 ** o.chunkSizeLog2;
      const segments = v.segments ?? o.body.segments;

      // The synchronous core: exactly the recorded error and exactly the recorded released bytes.
      const r = decryptCollect(dataKey, chunkSize, segments, a.body);
      assert.equal(r.error, expect.error);
      assert.equal(r.released.length, expect.releasedBytes);
      assert.equal(sha256(r.released), expect.releasedSha256);
      if (expect.error !== null && v.segments === undefined && v.name !== 'part-swap-undeclared') {
        // Released bytes are the object's own plaintext, chunk-aligned, never from the failing chunk.
        assert.ok(r.released.equals(objectPlaintext(o).subarray(0, r.released.length)));
      }

      // The Transform, however the input is split: the same error, and nothing beyond the released prefix.
      await fc.assert(
        fc.asyncProperty(fc.array(fc.nat({ max: a.body.length }), { maxLength: 8 }), async (cuts) => {
          const points = [...cuts].sort((x, y) => x - y);
          const pieces = [...points, a.body.length].map((p, i) => a.body.subarray(i === 0 ? 0 : points[i - 1]!, p));
          const t = await pipe(pieces, createDecryptStream({ dataKey, chunkSize, segments }));
          assert.equal(t.error === null ? null : (t.error as FormatError).code, expect.error);
          assert.ok(t.out.equals(r.released.subarray(0, t.out.length)), 'Transform released bytes beyond the verified prefix');
          if (expect.error === null) assert.ok(t.out.equals(r.released));
        }),
        { numRuns: 15 },
      );
    });
  }
});

describe('generator', () => {
  it('reproduces the committed vector files byte for byte', () => {
    for (const [file, content] of Object.entries(vectorFiles())) {
      assert.equal(readFileSync(`${VECTOR_DIR}${file}`, 'utf8'), content, `${file} is stale or was edited by hand`);
    }
  });
});
