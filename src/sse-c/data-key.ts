/**
 * Data keys live in Buffers that are zeroed as soon as their work is done: `using key = scoped(…)` wipes at
 * the end of the scope, on every path. This is the one place keys are wiped (the format's decryptor keeps a
 * copy of its own for the stream's life; the encryptor keeps only the derived stream key).
 */

/** A data key that wipes itself when its `using` scope ends. */
export type ScopedKey = Buffer & Disposable;

/** Zeroes key material in place. */
export function wipe(...keys: Array<Buffer | undefined>): void {
  for (const k of keys) k?.fill(0);
}

export function scoped(key: Buffer): ScopedKey {
  return Object.assign(key, { [Symbol.dispose]: () => wipe(key) });
}
