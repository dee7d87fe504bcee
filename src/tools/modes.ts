/**
 * Which encryption a stored object has, from what a HEAD of the store shows (objects/stored.ts): the
 * envelope entry marks every object the proxy encrypted, and the KMS entry those whose key a KMS holds.
 */
import type { StoredObject } from '../objects/stored.ts';
import { KMS_META, parseKmsMeta } from '../sse-kms/managed.ts';

export const MODES = ['plain', 'sse-c', 'sse-s3', 'sse-kms', 'invalid', 'store-sse-c'] as const;
/**
 * `invalid`: the proxy's entries are there but do not parse (an edited object: reading it fails).
 * `store-sse-c`: encrypted by the store itself with an SSE-C key, written past the proxy (run.ts headListed).
 */
export type Mode = (typeof MODES)[number];

export function modeOf(stored: Pick<StoredObject, 'envelope' | 'headers'>): { mode: Mode; keyId?: string } {
  const kms = stored.headers[KMS_META];
  if (stored.envelope === undefined) return { mode: typeof kms === 'string' ? 'invalid' : 'plain' };
  if (typeof kms !== 'string') return { mode: 'sse-c' };
  try {
    const { key } = parseKmsMeta(kms);
    return { mode: key.mode === 'AES256' ? 'sse-s3' : 'sse-kms', keyId: key.keyId };
  } catch {
    return { mode: 'invalid' };
  }
}
