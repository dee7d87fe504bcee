/**
 * Re-sealing a stored object's data key for another key (key rotation, SSE-S3/KMS re-wrap) or name (a copy):
 * the ciphertext does not change, so the store copies it as it is and only the proxy's metadata entries are
 * new. The one place that knows which entries travel with the bytes.
 */
import { ENVELOPE_META, LAYOUT_META } from '../s3/headers.ts';
import type { CustomerKey } from '../sse-c/customer-key.ts';
import { wipe } from '../sse-c/data-key.ts';
import { sealEnvelope } from '../sse-c/envelope.ts';
import { CHECKSUM_META } from '../sse-c/sealed-checksum.ts';
import type { OpenedObject } from './open.ts';
import type { StoredObject } from './stored.ts';

export interface ResealTarget {
  /** The key the data key is sealed under now (the client's, or a KMS's new external key). */
  readonly customerKey: CustomerKey;
  /** The KMS metadata entry that stores an SSE-S3/KMS target's external key; empty otherwise. */
  readonly meta: Record<string, string>;
  readonly bucket: string;
  readonly key: string;
}

/**
 * The reserved metadata of `src`'s bytes under `to`: the envelope re-sealed with the same data key (so the
 * chunks stay valid), the KMS entry, and what describes the bytes themselves (layout marker, sealed checksum:
 * same data key, same plaintext).
 */
export function resealedMeta(src: Pick<StoredObject, 'headers'>, opened: OpenedObject, to: ResealTarget): Record<string, string> {
  const sealed = sealEnvelope({ customerKey: to.customerKey.key, bucket: to.bucket, key: to.key, dataKey: opened.dataKey, chunkSizeLog2: Math.log2(opened.chunkSize) });
  wipe(sealed.dataKey); // sealEnvelope's own copy
  const out: Record<string, string> = { [ENVELOPE_META]: sealed.value, ...to.meta };
  for (const name of [LAYOUT_META, CHECKSUM_META]) {
    const v = src.headers[name];
    if (typeof v === 'string') out[name] = v;
  }
  return out;
}
