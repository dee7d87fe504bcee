/**
 * A body whose length is known only at its end (a PostObject form's file) held until then, because the
 * upstream PUT needs its Content-Length first. It is held on local disk, never whole in memory, and encrypted
 * there under an ephemeral key that exists only in this process: a crash leaves ciphertext nobody can read,
 * and no plaintext of an SSE-C upload ever reaches a disk.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { createDecryptStream, createEncryptStream, wholeObjectRead } from '../format/stream.ts';
import { wipe } from '../sse-c/data-key.ts';

const SPOOL_CHUNK = 64 * 1024;

export interface Spooled extends AsyncDisposable {
  /** Plaintext bytes held. */
  readonly size: number;
  /** The plaintext, read back (once), verified chunk by chunk. */
  read(): Readable;
}

/** Holds `source` (at most `max` bytes, else `tooLarge()`) and gives it back with its size. */
export async function spool(source: Readable, max: number, tooLarge: () => Error): Promise<Spooled> {
  const dir = await mkdtemp(join(tmpdir(), 's3-ssec-proxy-spool-'));
  const path = join(dir, 'body');
  const key = randomBytes(32);
  const dispose = async () => {
    wipe(key);
    await rm(dir, { recursive: true, force: true });
  };
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      size += chunk.length;
      if (size > max) return cb(tooLarge());
      cb(null, chunk);
    },
  });
  try {
    await pipelineAsync(source, count, createEncryptStream({ dataKey: key, chunkSize: SPOOL_CHUNK, partNumber: 0 }), createWriteStream(path, { mode: 0o600 }));
  } catch (e) {
    source.resume();
    await dispose();
    throw e;
  }
  return {
    size,
    read: () =>
      (pipeline as (...s: unknown[]) => Readable)(
        createReadStream(path),
        createDecryptStream({ dataKey: key, chunkSize: SPOOL_CHUNK, selfDescribing: wholeObjectRead() }),
        () => {},
      ),
    [Symbol.asyncDispose]: dispose,
  };
}
