/**
 * The `kmip` KMS: master keys are AES-256 symmetric keys on a KMIP server (KMIP 1.4 over mutually authenticated
 * TLS, kmip-client.ts), found by their Name = the key id. The proxy draws the external key and an IV; the server
 * seals it with its Encrypt operation in AES-GCM (docs/FORMAT.md §13.6), so the master keys never leave it.
 *
 * Versions: the key objects sharing a Name, numbered by an Application Specific Information entry with namespace
 * `s3-ssec-proxy-key-version` and the version in decimal as its data (none: version 1). The highest Active version
 * seals new keys; each version opens what it sealed while it is Active. A Deactivated (revoked) or Compromised
 * version is Disabled (a Destroyed one is as absent); KMIP has no way back from there to Active, so re-enabling means registering the same key
 * bytes again under the same Name and version (docs/OPERATIONS.md). A Name with no object is NotFound; a destroyed
 * version's objects are unreadable for good.
 *
 * Each call: Locate the Name's Active objects, then Encrypt or Decrypt (two round trips); an object's version,
 * which does not change, is read once (Get Attributes) and remembered by its Unique Identifier. Only when no
 * Active object fits are all of the Name's objects looked at, to tell Disabled from NotFound and
 * InvalidCiphertext. Every call has the client's deadline; unwrapped keys are cached above (cache.ts), so a
 * ranged GET does not repeat them.
 */
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { wipe } from '../sse-c/data-key.ts';
import { isResult, KmipClient, KmipError, ResultReason, State, type KeyAttributes, type KmipClientOptions } from './kmip-client.ts';
import { KEY_ID_PATTERN, keyBinding, KmsError, type EncryptionContext, type GeneratedKey, type KeyStatus, type Kms } from './kms.ts';

/** Blob version 3: a KMIP seal (1 is the local KMS's, 2 PKCS#11's; changing any of these breaks stored data). */
export const KMIP_BLOB_VERSION = 3;
export const KMIP_AAD_LABEL = 's3-ssec-proxy/v1/kms-kmip';
/** The Application Specific Information namespace that numbers a master key's versions. */
export const KMIP_VERSION_NAMESPACE = 's3-ssec-proxy-key-version';
const HEADER_SIZE = 5; // version u8 ‖ key version u32be
const IV_SIZE = 12;
const KEY_SIZE = 32;
const TAG_SIZE = 16;
/** Unique Identifiers whose version is remembered; past this the memory starts afresh. */
const MAX_REMEMBERED = 10_000;
export const KMIP_BLOB_SIZE = HEADER_SIZE + IV_SIZE + KEY_SIZE + TAG_SIZE; // 65

export interface KmipSettings extends KmipClientOptions {
  /** The master key used when a request names none. */
  readonly defaultKeyId: string;
  /** @default crypto.randomBytes */
  readonly randomBytes?: ((n: number) => Buffer) | undefined;
}

interface Version {
  readonly uid: string;
  readonly version: number;
  readonly active: boolean;
}

/** The GCM AAD: blob header ‖ label ‖ lp(keyId) ‖ canonical context (as PKCS#11's, another label). */
export function kmipAad(header: Buffer, keyId: string, context: EncryptionContext): Buffer {
  return Buffer.concat([header, keyBinding(KMIP_AAD_LABEL, keyId, context)]);
}

/** The version an object's attributes give it; undefined when its entry is not a version number. */
function versionOf(a: KeyAttributes): number | undefined {
  const entries = a.appInfo.filter(([ns]) => ns === KMIP_VERSION_NAMESPACE);
  if (entries.length === 0) return 1;
  const data = entries.length === 1 ? entries[0]![1] : '';
  const v = /^[1-9]\d{0,9}$/.test(data) ? Number(data) : 0;
  return v >= 1 && v <= 0xffffffff ? v : undefined;
}

/** A KMIP failure as a KMS error: the server refusing a use is Disabled, anything else Unavailable. */
function kmsError(e: unknown, keyId: string): KmsError {
  if (e instanceof KmsError) return e;
  if (isResult(e, ResultReason.PermissionDenied)) return new KmsError('Disabled', `${keyId} is disabled.`);
  if (isResult(e, ResultReason.ItemNotFound)) return new KmsError('NotFound', `Invalid keyId ${keyId}`);
  const what = e instanceof KmipError ? e.message : 'KMIP failure';
  return new KmsError('Unavailable', `The KMIP server failed (${what.slice(0, 300)}).`, { cause: e });
}

export class KmipKms implements Kms {
  readonly defaultKeyId: string;
  readonly #client: KmipClient;
  readonly #random: (n: number) => Buffer;
  /** Unique Identifier → its version, or undefined when it is none of a key id's versions (by Name and entry). */
  readonly #known = new Map<string, { readonly version: number | undefined; readonly names: readonly string[] }>();

  constructor(settings: KmipSettings) {
    if (!KEY_ID_PATTERN.test(settings.defaultKeyId)) throw new RangeError(`default key id must match ${KEY_ID_PATTERN}`);
    this.defaultKeyId = settings.defaultKeyId;
    this.#client = new KmipClient(settings);
    this.#random = settings.randomBytes ?? cryptoRandomBytes;
  }

  async generateKey(keyId: string, context: EncryptionContext): Promise<GeneratedKey> {
    try {
      const newest = (await this.#active(keyId)).at(-1);
      if (!newest) {
        await this.#versions(keyId); // NotFound when the Name has no object at all
        throw new KmsError('Disabled', `${keyId} is disabled.`);
      }
      const blob = Buffer.alloc(KMIP_BLOB_SIZE);
      blob[0] = KMIP_BLOB_VERSION;
      blob.writeUInt32BE(newest.version, 1);
      this.#draw(IV_SIZE).copy(blob, HEADER_SIZE);
      const plaintext = this.#draw(KEY_SIZE);
      try {
        const iv = blob.subarray(HEADER_SIZE, HEADER_SIZE + IV_SIZE);
        const { ciphertext, tag } = await this.#client.encryptGcm(newest.uid, plaintext, iv, kmipAad(blob.subarray(0, HEADER_SIZE), keyId, context));
        if (ciphertext.length !== KEY_SIZE || tag.length !== TAG_SIZE) throw new KmsError('Unavailable', 'The KMIP server returned a seal of the wrong length.');
        ciphertext.copy(blob, HEADER_SIZE + IV_SIZE);
        tag.copy(blob, HEADER_SIZE + IV_SIZE + KEY_SIZE);
        return { plaintext, sealed: blob };
      } catch (e) {
        wipe(plaintext);
        throw e;
      }
    } catch (e) {
      throw kmsError(e, keyId);
    }
  }

  async decrypt(keyId: string, sealed: Buffer, context: EncryptionContext): Promise<Buffer> {
    if (sealed.length !== KMIP_BLOB_SIZE || sealed[0] !== KMIP_BLOB_VERSION) {
      throw new KmsError('InvalidCiphertext', 'The sealed key is not a KMIP KMS blob of a known version.');
    }
    const version = sealed.readUInt32BE(1);
    try {
      // A reinstated version (the same bytes registered again) is Active beside its revoked original.
      const key = (await this.#active(keyId)).find((v) => v.version === version);
      if (!key) {
        const matching = (await this.#versions(keyId)).filter((v) => v.version === version);
        if (matching.length === 0) throw new KmsError('InvalidCiphertext', `${keyId} has no version ${version}.`);
        throw new KmsError('Disabled', `${keyId} is disabled.`);
      }
      const iv = sealed.subarray(HEADER_SIZE, HEADER_SIZE + IV_SIZE);
      const aad = kmipAad(sealed.subarray(0, HEADER_SIZE), keyId, context);
      let plaintext: Buffer;
      try {
        plaintext = await this.#client.decryptGcm(key.uid, sealed.subarray(HEADER_SIZE + IV_SIZE, HEADER_SIZE + IV_SIZE + KEY_SIZE), iv, aad, sealed.subarray(HEADER_SIZE + IV_SIZE + KEY_SIZE));
      } catch (e) {
        // A tag that does not verify is no KMIP result of its own (PyKMIP: General Failure), as a failing server's.
        if (isResult(e, ResultReason.GeneralFailure, ResultReason.CryptographicFailure) && (await this.#sealsAndOpens(key.uid))) {
          throw new KmsError('InvalidCiphertext', 'The sealed key does not open under this key id and context.');
        }
        throw e;
      }
      if (plaintext.length !== KEY_SIZE) {
        wipe(plaintext);
        throw new KmsError('InvalidCiphertext', 'The sealed key does not open under this key id and context.');
      }
      return plaintext;
    } catch (e) {
      throw kmsError(e, keyId);
    }
  }

  async status(keyId: string): Promise<KeyStatus> {
    try {
      return (await this.#versions(keyId)).some((v) => v.active) ? 'enabled' : 'disabled';
    } catch (e) {
      const k = kmsError(e, keyId);
      if (k.code === 'NotFound') return 'missing';
      throw k;
    }
  }

  /** The default key only: KMIP's Locate cannot list names without listing every object of the server. */
  async list(): Promise<readonly string[]> {
    return [this.defaultKeyId];
  }

  /** Closes the connection (tests; a process exiting needs nothing). */
  close(): void {
    this.#client.close();
  }

  /** Whether `uid` still seals and opens a random probe: tells a blob that does not open from a failing server. */
  async #sealsAndOpens(uid: string): Promise<boolean> {
    const probe = this.#draw(KEY_SIZE + IV_SIZE);
    try {
      const iv = probe.subarray(KEY_SIZE);
      const aad = Buffer.from(KMIP_AAD_LABEL, 'ascii');
      const { ciphertext, tag } = await this.#client.encryptGcm(uid, probe.subarray(0, KEY_SIZE), iv, aad);
      const opened = await this.#client.decryptGcm(uid, ciphertext, iv, aad, tag);
      return opened.equals(probe.subarray(0, KEY_SIZE));
    } catch {
      return false;
    } finally {
      wipe(probe);
    }
  }

  /** `keyId`'s Active versions, oldest first (none: disabled, or no such key). */
  async #active(keyId: string): Promise<Version[]> {
    if (!KEY_ID_PATTERN.test(keyId)) throw new KmsError('NotFound', `Invalid keyId ${keyId.slice(0, 64)}`);
    const versions: Version[] = [];
    for (const uid of await this.#client.locate(keyId, State.Active)) {
      let known = this.#known.get(uid);
      if (!known) {
        const a = await this.#client.attributes(uid);
        known = this.#remember(a);
        if (a.state !== State.Active) continue; // revoked meanwhile
      }
      if (known.version !== undefined && known.names.includes(keyId)) versions.push({ uid, version: known.version, active: true });
    }
    return versions.sort((a, b) => a.version - b.version);
  }

  /** All of `keyId`'s versions with their current state, oldest first; NotFound when no object has that Name. */
  async #versions(keyId: string): Promise<Version[]> {
    if (!KEY_ID_PATTERN.test(keyId)) throw new KmsError('NotFound', `Invalid keyId ${keyId.slice(0, 64)}`);
    const versions: Version[] = [];
    for (const uid of await this.#client.locate(keyId)) {
      const a = await this.#client.attributes(uid);
      const { version, names } = this.#remember(a);
      if (version === undefined || !names.includes(keyId)) continue; // not one of this key's versions
      // Servers that keep destroyed objects (PyKMIP deletes them): their key is gone, as if absent.
      if (a.state === State.Destroyed || a.state === State.DestroyedCompromised) continue;
      versions.push({ uid, version, active: a.state === State.Active });
    }
    if (versions.length === 0) throw new KmsError('NotFound', `Invalid keyId ${keyId}`);
    return versions.sort((a, b) => a.version - b.version || Number(a.active) - Number(b.active));
  }

  #remember(a: KeyAttributes): { version: number | undefined; names: readonly string[] } {
    if (this.#known.size >= MAX_REMEMBERED) this.#known.clear();
    const known = { version: versionOf(a), names: a.names };
    this.#known.set(a.uid, known);
    return known;
  }

  #draw(n: number): Buffer {
    const b = this.#random(n);
    if (!Buffer.isBuffer(b) || b.length !== n) throw new RangeError(`randomBytes(${n}) returned the wrong length`);
    return Buffer.from(b);
  }
}
