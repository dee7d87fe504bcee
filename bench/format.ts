/**
 * Throughput of the format on one core (not a test):
 *   node --import tsx bench/format.ts [MiB=256] [runs=5]
 * Encrypts and decrypts MiB of data with 64 KiB chunks through the Transform streams, fed in 1 MiB, 64 KiB and
 * 16 KiB writes (16-64 KiB is what sockets deliver), and prints the best of `runs` in MB/s (10^6 bytes/s).
 * Decryption is measured positionally (a single PUT) and self-describing, the latter also over a multipart
 * object of 5 MiB parts (one part boundary to find per 5 MiB).
 * A baseline, bare AES-256-GCM with one createCipheriv per 64 KiB chunk (KeyObject, counter nonce), is
 * measured in the same process: on a shared machine compare against it rather than against absolute numbers.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { deriveStreamKey } from '../src/format/chunk.ts';
import { CHUNK_HEADER_SIZE, STREAM_ID_SIZE } from '../src/format/constants.ts';
import { createDecryptStream, createEncryptStream, wholeObjectRead, wholeStreamSegment } from '../src/format/stream.ts';

const total = Number(process.argv[2] ?? 256) * 1024 * 1024;
const runs = Number(process.argv[3] ?? 5);
const chunkSize = 64 * 1024;
const dataKey = randomBytes(32);

function source(data: Buffer, writeSize: number): Readable {
  let pos = 0;
  return new Readable({
    highWaterMark: writeSize,
    read() {
      this.push(pos < data.length ? data.subarray(pos, (pos += writeSize)) : null);
    },
  });
}

function sink(collect?: Buffer[]): Writable {
  return new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _encoding, callback) {
      collect?.push(chunk);
      callback();
    },
  });
}

async function best(label: string, fn: () => Promise<void> | void): Promise<number> {
  let seconds = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    seconds = Math.min(seconds, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const mbps = total / seconds / 1e6;
  console.log(`${label.padEnd(40)} ${mbps.toFixed(0).padStart(6)} MB/s`);
  return mbps;
}

const plaintext = randomBytes(total);
const parts: Buffer[] = [];
await pipeline(source(plaintext, 1 << 20), createEncryptStream({ dataKey, chunkSize, partNumber: 0 }), sink(parts));
const ciphertext = Buffer.concat(parts);
parts.length = 0;
// The same plaintext as a multipart upload of 5 MiB parts (aligned with 64 KiB chunks), part numbers 1, 2, ...
const PART = 5 * 1024 * 1024;
const multipartPieces: Buffer[] = [];
for (let off = 0, n = 1; off < total; off += PART, n++) {
  await pipeline(source(plaintext.subarray(off, off + PART), 1 << 20), createEncryptStream({ dataKey, chunkSize, partNumber: n }), sink(multipartPieces));
}
const multipart = Buffer.concat(multipartPieces);
multipartPieces.length = 0;

console.log(`node ${process.version}; ${total / 2 ** 20} MiB; ${chunkSize / 1024} KiB chunks; best of ${runs}`);
const key = deriveStreamKey(dataKey, randomBytes(STREAM_ID_SIZE), 0, 16);
const nonce = Buffer.alloc(12);
const aad = Buffer.alloc(CHUNK_HEADER_SIZE);
const baseline = await best('baseline: bare AES-256-GCM per chunk', () => {
  for (let off = 0; off < total; off += chunkSize) {
    nonce.writeUInt32BE(off / chunkSize, 8);
    const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
    cipher.setAAD(aad);
    cipher.update(plaintext.subarray(off, off + chunkSize));
    cipher.final();
    cipher.getAuthTag();
  }
});
for (const writeSize of [1 << 20, 64 * 1024, 16 * 1024]) {
  const w = `${writeSize / 1024} KiB writes`;
  const enc = await best(`encrypt stream, ${w}`, () =>
    pipeline(source(plaintext, writeSize), createEncryptStream({ dataKey, chunkSize, partNumber: 0 }), sink()),
  );
  const dec = await best(`decrypt stream, ${w}`, () =>
    pipeline(source(ciphertext, writeSize), createDecryptStream({ dataKey, chunkSize, segments: [wholeStreamSegment(0)] }), sink()),
  );
  const sd = await best(`decrypt self-describing, ${w}`, () =>
    pipeline(source(ciphertext, writeSize), createDecryptStream({ dataKey, chunkSize, selfDescribing: wholeObjectRead() }), sink()),
  );
  const mp = await best(`decrypt 5 MiB parts, s-d, ${w}`, () =>
    pipeline(source(multipart, writeSize), createDecryptStream({ dataKey, chunkSize, selfDescribing: wholeObjectRead() }), sink()),
  );
  console.log(
    `${''.padEnd(40)} (${pct(enc)} / ${pct(dec)} / ${pct(sd)} / ${pct(mp)} of baseline)`,
  );
}

function pct(mbps: number): string {
  return `${((mbps / baseline) * 100).toFixed(0)}%`;
}
