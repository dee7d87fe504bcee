/**
 * The KMS of a configuration: built on first use (the keys file was checked when the configuration was
 * loaded), one per Config object, behind the cache of unwrapped keys.
 */
import type { Config } from '../config.ts';
import { CachingKms } from './cache.ts';
import { LocalKms } from './local.ts';

const kmses = new WeakMap<object, CachingKms>();

/** The configured KMS, or undefined when none is (SSE-S3/KMS requests are then refused). */
export function kmsOf(config: Pick<Config, 'kms'>): CachingKms | undefined {
  if (!config.kms) return undefined;
  let kms = kmses.get(config);
  if (!kms) kmses.set(config, (kms = new CachingKms(LocalKms.fromFile(config.kms.localKeys))));
  return kms;
}
