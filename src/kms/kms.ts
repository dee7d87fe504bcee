/**
 * The key management service the proxy asks for SSE-S3 and SSE-KMS objects' keys (docs/FORMAT.md §13). A KMS
 * holds named master keys it never hands out; it generates a fresh 32-byte *external key* per object, returned
 * in the clear (used once, then wiped) and sealed under a master key, bound to an encryption context (the
 * object's name). The sealed blob is stored with the object; reading it back asks the KMS to decrypt it.
 *
 * Every call is async and may fail, so a network KMS (KMIP, PKCS#11 behind a daemon, a cloud KMS) fits the
 * same interface; failures are KmsErrors with a stable code, mapped to S3's answers at the edge.
 */

/** Key/value pairs bound to a sealed key: decrypting needs exactly the same pairs. */
export type EncryptionContext = Readonly<Record<string, string>>;

export type KeyStatus = 'enabled' | 'disabled' | 'missing';

export interface GeneratedKey {
  /** The external key (32 bytes). The caller wipes it once used. */
  readonly plaintext: Buffer;
  /** The external key sealed under the master key, opaque to the caller (stored with the object). */
  readonly sealed: Buffer;
}

export interface Kms {
  /** The master key used when a request names none (SSE-S3, and SSE-KMS without a key id). */
  readonly defaultKeyId: string;
  /** A new external key sealed under `keyId` for `context`. */
  generateKey(keyId: string, context: EncryptionContext): Promise<GeneratedKey>;
  /** The external key inside `sealed`, which must have been made under `keyId` for exactly `context`. */
  decrypt(keyId: string, sealed: Buffer, context: EncryptionContext): Promise<Buffer>;
  /** Whether `keyId` can be used (missing: unknown to this KMS). */
  status(keyId: string): Promise<KeyStatus>;
  /** The master key ids this KMS knows, for operators (GetBucketEncryption does not need it). */
  list(): Promise<readonly string[]>;
}

export type KmsErrorCode =
  /** No master key with that id. */
  | 'NotFound'
  /** The master key exists but may not be used (disabled, or its version retired). */
  | 'Disabled'
  /** The sealed blob does not open: edited, another key id or another context. */
  | 'InvalidCiphertext'
  /** The KMS could not be reached or failed; retryable. */
  | 'Unavailable';

/** A KMS failure. Never carries key material; messages may name the key id. */
export class KmsError extends Error {
  override readonly name = 'KmsError';
  constructor(
    readonly code: KmsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Master key ids: what S3 and KMS accept in ids, ARNs and aliases, and nothing that needs escaping in metadata. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,255}$/;

/**
 * The context's canonical bytes, bound by sealing: entries sorted by key (UTF-16 order, as JSON.stringify of a
 * sorted object would list them), each as u32be(len) ‖ utf8(key) ‖ u32be(len) ‖ utf8(value).
 */
export function canonicalContext(context: EncryptionContext): Buffer {
  const parts: Buffer[] = [];
  for (const k of Object.keys(context).sort()) {
    for (const v of [k, context[k]!]) {
      if (!v.isWellFormed()) throw new TypeError('encryption context strings must be well-formed');
      parts.push(lengthPrefixed(v));
    }
  }
  return Buffer.concat(parts);
}

/** u32be(len) ‖ utf8(s). */
function lengthPrefixed(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/**
 * What every KMS binds a sealed key to (the local KMS's HKDF info, the PKCS#11 and KMIP seals' AAD after their
 * blob header): ascii(label) ‖ u32be(len) ‖ utf8(key id) ‖ canonicalContext(context).
 */
export function keyBinding(label: string, keyId: string, context: EncryptionContext): Buffer {
  return Buffer.concat([Buffer.from(label, 'ascii'), lengthPrefixed(keyId), canonicalContext(context)]);
}
