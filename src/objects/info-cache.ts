/**
 * What the proxy has learned about stored objects, keyed by bucket, key and upstream ETag: whether an object
 * is encrypted and its plaintext size. A listing does not say which objects are encrypted, so a listed object
 * this replica has not seen costs one HEAD, once. An ETag names one exact content, so entries never go stale;
 * the cache is bounded and only an optimisation (any replica can rebuild it from the upstream).
 */
import type { ObjectLayout, PartExtent } from '../format/parts.ts';

export interface ObjectInfo {
  readonly encrypted: boolean;
  /** Plaintext size (for unencrypted objects, the stored size). */
  readonly size: number;
  /** The part table of an encrypted object whose parts are not chunk-aligned or end with tail records. */
  readonly parts?: readonly PartExtent[];
  /** The part table was read from tail records opened with the key (reads may rely on it). */
  readonly verified?: boolean;
  /** The parts end with tail records. */
  readonly tails?: boolean;
  /** The envelope's chunk size, when known (needed to plan a read without the envelope). */
  readonly chunkSize?: number;
}

/** What to remember of a probed layout. */
export function infoOf(layout: ObjectLayout, chunkSize: number): ObjectInfo {
  return {
    encrypted: true,
    size: layout.plainSize,
    chunkSize,
    ...(layout.parts ? { parts: layout.parts } : {}),
    ...(layout.verified ? { verified: true } : {}),
    ...(layout.tails ? { tails: true } : {}),
  };
}

/** An entry weighs one, plus one per remembered part (a part entry is ~200 bytes). */
function weightOf(info: ObjectInfo): number {
  return 1 + (info.parts?.length ?? 0);
}

/**
 * Least recently used entries go first once the total weight passes `maxWeight` (objects plus remembered
 * parts; the default bounds the cache to some tens of MiB whatever the objects' part counts).
 */
/** The layout a cached entry stands for (the inverse of infoOf). */
export function layoutOfInfo(info: ObjectInfo): ObjectLayout {
  return {
    plainSize: info.size,
    ...(info.parts ? { parts: info.parts } : {}),
    ...(info.tails ? { tails: true } : {}),
    ...(info.verified ? { verified: true } : {}),
  };
}

export class ObjectInfoCache {
  private readonly entries = new Map<string, ObjectInfo>();
  /** bucket/key → the ETag most recently learned for it. */
  private readonly newest = new Map<string, string>();
  /** Entries per bucket: a listing of a bucket this replica knows nothing of looks up none of its objects. */
  private readonly perBucket = new Map<string, number>();
  private weight = 0;
  constructor(private readonly maxWeight = 300_000) {}

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

  /** `current`: learned from the object's current version (not a `versionId` read or a version listing). */
  set(bucket: string, key: string, etag: string | undefined, info: ObjectInfo, current = true): void {
    if (!etag) return;
    const id = ObjectInfoCache.id(bucket, key, etag);
    const old = this.entries.get(id);
    if (old) this.weight -= weightOf(old);
    else this.count(bucket, 1);
    this.entries.delete(id);
    this.entries.set(id, info);
    this.weight += weightOf(info);
    while (this.weight > this.maxWeight && this.entries.size > 1) {
      const [oldest, dropped] = this.entries.entries().next().value as [string, ObjectInfo];
      this.entries.delete(oldest);
      this.weight -= weightOf(dropped);
      this.count(oldest.slice(0, oldest.indexOf('\u0000')), -1);
    }
    if (!current) return;
    const name = `${bucket}\u0000${key}`;
    this.newest.delete(name);
    this.newest.set(name, etag.replace(/"/g, ''));
    if (this.newest.size > this.maxWeight) {
      const oldest = this.newest.keys().next().value;
      if (oldest !== undefined) this.newest.delete(oldest);
    }
  }

  /**
   * The version of bucket/key this replica learned of last, if it still knows it. Only a hint: reads pinned
   * to it with If-Match fall back when the object has changed since.
   */
  latest(bucket: string, key: string): { etag: string; info: ObjectInfo } | undefined {
    const etag = this.newest.get(`${bucket}\u0000${key}`);
    if (etag === undefined) return undefined;
    const info = this.entries.get(ObjectInfoCache.id(bucket, key, etag));
    return info ? { etag: `"${etag}"`, info } : undefined;
  }

  /** Whether this replica has learned anything of the bucket's objects. */
  knowsBucket(bucket: string): boolean {
    return this.perBucket.has(bucket);
  }

  private count(bucket: string, delta: number): void {
    const n = (this.perBucket.get(bucket) ?? 0) + delta;
    if (n > 0) this.perBucket.set(bucket, n);
    else this.perBucket.delete(bucket);
  }

  get size(): number {
    return this.entries.size;
  }
}
