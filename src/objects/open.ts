/**
 * Opening a stored object with the client's key: the one place where "encrypted or not" is matched against
 * "key given or not", and where a wrong key becomes S3's 403.
 */
import { FormatError } from '../format/errors.ts';
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import type { CustomerKey } from '../sse-c/customer-key.ts';
import { scoped, type ScopedKey } from '../sse-c/data-key.ts';
import { openEnvelope } from '../sse-c/envelope.ts';
import type { StoredObject } from './stored.ts';

/** An opened object: its data key (wiped when the `using` scope ends) and chunk size. */
export interface OpenedObject extends Disposable {
  readonly dataKey: ScopedKey;
  readonly chunkSize: number;
}

/**
 * S3's 400 for an encrypted object without a key or a plain object with one (checked before the key itself,
 * as S3 orders its answers). True when the object is encrypted (and a key was given).
 */
export function requireKeyFor(stored: Pick<StoredObject, 'envelope'>, customerKey: CustomerKey | undefined): customerKey is CustomerKey {
  if (stored.envelope === undefined) {
    if (customerKey) throw new S3Error('InvalidRequest', SSEC_MESSAGES.notApplicable);
    return false;
  }
  if (!customerKey) throw new S3Error('InvalidRequest', SSEC_MESSAGES.needKey);
  return true;
}

/**
 * The object's data key under `customerKey`. An encrypted object without a key, or a plain object with one,
 * is S3's 400; a wrong key (or an envelope moved to another name, or its sealed bytes edited) is S3's 403;
 * an envelope that is not one at all is a FormatError (the edge's integrity failure).
 * Returns undefined for a plain object read without a key.
 */
export function openObject(stored: Pick<StoredObject, 'envelope' | 'bucket' | 'key'>, customerKey: CustomerKey | undefined): OpenedObject | undefined {
  if (!requireKeyFor(stored, customerKey)) return undefined;
  let opened;
  try {
    opened = openEnvelope(stored.envelope!, customerKey.key, stored.bucket, stored.key);
  } catch (e) {
    if (e instanceof FormatError && e.code === 'EnvelopeUnsealFailed') throw new S3Error('AccessDenied', SSEC_MESSAGES.wrongKey, { cause: e });
    throw e;
  }
  const dataKey = scoped(opened.dataKey);
  return { dataKey, chunkSize: opened.chunkSize, [Symbol.dispose]: () => dataKey[Symbol.dispose]() };
}
