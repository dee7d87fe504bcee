/**
 * The KMS of a configuration: built on first use (a keys file was checked when the configuration was loaded; a
 * PKCS#11 token is opened, a KMIP server connected to, by the first call), one per Config object, behind the cache of unwrapped keys.
 */
import type { Config } from '../config.ts';
import { readFileSync } from 'node:fs';
import { CachingKms } from './cache.ts';
import { KmipKms } from './kmip.ts';
import { LocalKms } from './local.ts';
import { Pkcs11Kms } from './pkcs11.ts';

const kmses = new WeakMap<object, CachingKms>();

/** The configured KMS, or undefined when none is (SSE-S3/KMS requests are then refused). */
export function kmsOf(config: Pick<Config, 'kms'>): CachingKms | undefined {
  const settings = config.kms;
  if (!settings) return undefined;
  let kms = kmses.get(config);
  if (!kms) {
    const inner =
      'pkcs11' in settings
        ? new Pkcs11Kms({ ...settings.pkcs11, defaultKeyId: settings.defaultKeyId })
        : 'kmip' in settings
          ? new KmipKms({
              host: settings.kmip.host,
              port: settings.kmip.port,
              ca: settings.kmip.caFile !== undefined ? readFileSync(settings.kmip.caFile) : undefined,
              cert: readFileSync(settings.kmip.certFile),
              key: readFileSync(settings.kmip.keyFile),
              credentials: settings.kmip.credentials,
              defaultKeyId: settings.defaultKeyId,
            })
          : LocalKms.fromFile(settings.localKeys, settings.defaultKeyId);
    kmses.set(config, (kms = new CachingKms(inner)));
  }
  return kms;
}
