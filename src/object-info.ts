/**
 * What the proxy has learned about stored objects, keyed by bucket, key and upstream ETag: whether an object
 * is encrypted and its plaintext size. A listing does not say which objects are encrypted, so a listed object
 * this replica has not seen costs one HEAD, once. An ETag names one exact content, so entries never go stale;
 * the cache is bounded and only an optimisation (any replica can rebuild it from the upstream).
 */
import type { PartExtent } from './handlers/object-layout.ts';

export interface ObjectInfo {
  readonly encrypted: boolean;
  /** Plaintext size (for unencrypted objects, the stored size). */
  readonly size: number;
  /** The part table of an encrypted object whose parts are not chunk-aligned. */
  readonly parts?: readonly PartExtent[];
}

export class ObjectInfoCache {
  private readonly entries = new Map<string, ObjectInfo>();
  constructor(private readonly maxEntries = 200_000) {}

  private static id(bucket: string, key: string, etag: string): string {
    return `${bucket}\u0000${key}\u0000${etag.replace(/"/g, '')}`;
  }

  get(bucket: string, key: string, etag: string): ObjectInfo | undefined {
    const id = ObjectInfoCache.id(bucket, key, etag);
    const v = this.entries.get(id);
    if (v) {
      // Refresh recency (Map keeps insertion order: oldest first).
      this.entries.delete(id);
      this.entries.set(id, v);
    }
    return v;
  }

  set(bucket: string, key: string, etag: string | undefined, info: ObjectInfo): void {
    if (!etag) return;
    const id = ObjectInfoCache.id(bucket, key, etag);
    this.entries.delete(id);
    this.entries.set(id, info);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
