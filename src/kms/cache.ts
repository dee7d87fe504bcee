/**
 * Unwrapped external keys, kept for a short while so a ranged GET, a HEAD and the next GET of the same object
 * do not each pay a KMS call. Bounded in entries and age; an entry leaving the cache (evicted, expired,
 * cleared) is wiped. Callers get their own copy, which they wipe.
 *
 * Trade-off (docs/SECURITY.md): disabling a master key takes effect for cached objects once their entries
 * expire (the TTL), not at once.
 */
import { createHash } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { wipe } from '../sse-c/data-key.ts';
import { canonicalContext, KmsError, type EncryptionContext, type GeneratedKey, type KeyStatus, type Kms } from './kms.ts';

/** One call that reached the KMS (cache hits excluded): `ok`, a KmsError code, or `error` (anything else). */
export interface KmsCallEvent {
  readonly operation: 'generate' | 'decrypt' | 'status';
  readonly outcome: 'ok' | KmsError['code'] | 'error';
}

/**
 * Where each call that reached the KMS is published (for metrics, admin.ts): the KMS stays free of any
 * metrics library, and publishing costs nothing while nobody listens.
 */
export const kmsCalls = diagnostics.channel('s3-ssec-proxy:kms');

async function observed<T>(operation: KmsCallEvent['operation'], call: () => Promise<T>): Promise<T> {
  try {
    const r = await call();
    if (kmsCalls.hasSubscribers) kmsCalls.publish({ operation, outcome: 'ok' } satisfies KmsCallEvent);
    return r;
  } catch (e) {
    if (kmsCalls.hasSubscribers) kmsCalls.publish({ operation, outcome: e instanceof KmsError ? e.code : 'error' } satisfies KmsCallEvent);
    throw e;
  }
}

export interface KeyCacheOptions {
  /** @default 1000 */
  readonly maxEntries?: number;
  /** @default 60_000 */
  readonly ttlMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

interface Entry {
  readonly key: Buffer;
  readonly expires: number;
}

/** A Kms whose decrypt answers from a bounded, expiring cache of unwrapped keys. */
export class CachingKms implements Kms {
  readonly #inner: Kms;
  readonly #entries = new Map<string, Entry>();
  readonly #max: number;
  readonly #ttl: number;
  readonly #now: () => number;
  /** KMS calls made (for tests and metrics). */
  calls = 0;

  constructor(inner: Kms, options: KeyCacheOptions = {}) {
    this.#inner = inner;
    this.#max = options.maxEntries ?? 1000;
    this.#ttl = options.ttlMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  get defaultKeyId(): string {
    return this.#inner.defaultKeyId;
  }

  get size(): number {
    return this.#entries.size;
  }

  generateKey(keyId: string, context: EncryptionContext): Promise<GeneratedKey> {
    this.calls++;
    return observed('generate', () => this.#inner.generateKey(keyId, context));
  }

  async decrypt(keyId: string, sealed: Buffer, context: EncryptionContext): Promise<Buffer> {
    const id = createHash('sha256')
      .update(Buffer.from(keyId, 'utf8'))
      .update(Buffer.of(0))
      .update(sealed)
      .update(canonicalContext(context))
      .digest('base64');
    const now = this.#now();
    const hit = this.#entries.get(id);
    if (hit) {
      this.#entries.delete(id);
      if (hit.expires > now) {
        this.#entries.set(id, hit); // most recently used last
        return Buffer.from(hit.key);
      }
      wipe(hit.key);
    }
    this.calls++;
    const key = await observed('decrypt', () => this.#inner.decrypt(keyId, sealed, context));
    this.#evict(id); // a concurrent miss may have filled it meanwhile
    this.#entries.set(id, { key: Buffer.from(key), expires: now + this.#ttl });
    while (this.#entries.size > this.#max) this.#evict(this.#entries.keys().next().value!);
    return key;
  }

  status(keyId: string): Promise<KeyStatus> {
    return observed('status', () => this.#inner.status(keyId));
  }

  list(): Promise<readonly string[]> {
    return this.#inner.list();
  }

  /** Wipes and forgets every entry. */
  clear(): void {
    for (const id of [...this.#entries.keys()]) this.#evict(id);
  }

  #evict(id: string): void {
    const e = this.#entries.get(id);
    if (e) wipe(e.key);
    this.#entries.delete(id);
  }
}
