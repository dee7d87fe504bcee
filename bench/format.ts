/**
 * Throughput of the format on one core: `node --import tsx bench/format.ts [MiB]`.
 * Encrypt and decrypt 256 MiB (default) with 64 KiB chunks through the Transform streams, fed in 1 MiB
 * and 64 KiB writes. Not a test: prints MB/s (10^6 bytes per second).
 */
import { randomBytes } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecryptStream, createEncryptStream, wholeStreamSegment } from '../src/format/stream.ts';

const total = Number(process.argv[2] ?? 256) * 1024 * 1024;
const chunkSize = 64 * 1024;
const dataKey = randomBytes(32);

function source(writeSize: number, data: Buffer): Readable {
  let pos = 0;
  return new Readable({
    highWaterMark: writeSize,
    read() {
      if (pos >= data.length) {
        this.push(null);
        return;
      }
      this.push(data.subarray(pos, pos + writeSize));
      pos += writeSize;
    },
  });
}

function sink(collect: Buffer[] | null): Writable {
  return new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _e, cb) {
      collect?.push(chunk);
      cb();
    },
  });
}

async function run(label: string, bytes: number, fn: () => Promise<void>): Promise<void> {
  await fn(); // warm-up is cheap relative to 256 MiB; run twice, report the second
  const t0 = process.hrtime.bigint();
  await fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${label.padEnd(34)} ${(bytes / s / 1e6).toFixed(0).padStart(6)} MB/s  (${(bytes / 2 ** 20).toFixed(0)} MiB in ${s.toFixed(3)} s)`);
}

const plaintext = randomBytes(total);
const ciphertextParts: Buffer[] = [];
await pipeline(source(1 << 20, plaintext), createEncryptStream({ dataKey, chunkSize, partNumber: 0 }), sink(ciphertextParts));
const ciphertext = Buffer.concat(ciphertextParts);
ciphertextParts.length = 0;

console.log(`node ${process.version}, ${total / 2 ** 20} MiB, ${chunkSize / 1024} KiB chunks`);
for (const writeSize of [1 << 20, 64 * 1024]) {
  const w = `${writeSize / 1024} KiB writes`;
  await run(`encrypt (${w})`, total, () =>
    pipeline(source(writeSize, plaintext), createEncryptStream({ dataKey, chunkSize, partNumber: 0 }), sink(null)),
  );
  await run(`decrypt (${w})`, total, async () => {
    // Decrypting needs the stream id of the ciphertext above, which its headers carry.
    await pipeline(
      source(writeSize, ciphertext),
      createDecryptStream({ dataKey, chunkSize, segments: [wholeStreamSegment(0)] }),
      sink(null),
    );
  });
}
