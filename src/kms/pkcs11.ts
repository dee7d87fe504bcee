/**
 * The `pkcs11` KMS: master keys are AES-256 secret-key objects on a PKCS#11 token (an HSM; SoftHSM2 in tests),
 * found by CKA_LABEL = the key id. External keys come from the token's RNG and are sealed by the token with
 * CKM_AES_GCM (docs/FORMAT.md §13.5): the master keys never leave it, the proxy only ever holds external keys.
 *
 * Versions: objects sharing a label, numbered by CKA_ID (an unsigned big-endian integer, 1..2^32-1). The highest
 * seals new keys; every version still decrypts what it sealed. A version whose CKA_ENCRYPT (sealing) or
 * CKA_DECRYPT (opening) is false is disabled; a label with no object is NotFound (the objects sealed under it
 * are gone for good).
 *
 * pkcs11js calls are synchronous and block the event loop: each is a short token operation on 32 bytes (a
 * lookup, one C_Encrypt/C_Decrypt), and the unwrapped-key cache (cache.ts) keeps them off the hot path. One
 * logged-in session per process (Node runs one call at a time); a session the token dropped (closed, device
 * removed, logged out) is reopened once per call, and a token that still fails is `Unavailable` (S3's 503).
 */
import { createRequire } from 'node:module';
import type * as P from 'pkcs11js';
import { wipe } from '../sse-c/data-key.ts';
import { KEY_ID_PATTERN, keyBinding, KmsError, type EncryptionContext, type GeneratedKey, type KeyStatus, type Kms } from './kms.ts';

/** Blob version 2: a PKCS#11 seal (version 1 is the local KMS's; changing any of these breaks stored data). */
export const PKCS11_BLOB_VERSION = 2;
export const PKCS11_AAD_LABEL = 's3-ssec-proxy/v1/kms-pkcs11';
const HEADER_SIZE = 5; // version u8 ‖ key version u32be
const IV_SIZE = 12;
const KEY_SIZE = 32;
const TAG_SIZE = 16;
export const PKCS11_BLOB_SIZE = HEADER_SIZE + IV_SIZE + KEY_SIZE + TAG_SIZE; // 65

export interface Pkcs11Settings {
  /** Path of the PKCS#11 module (.so). */
  readonly module: string;
  /** The token's label, or … */
  readonly token?: string | undefined;
  /** … its slot's index in C_GetSlotList(true). */
  readonly slot?: number | undefined;
  /** The user PIN (never logged, never in an error). */
  readonly pin: string;
  /** The master key used when a request names none. */
  readonly defaultKeyId: string;
}

type Binding = typeof P;
let binding: Binding | undefined;

/** pkcs11js, loaded on first use. */
function pkcs11(): Binding {
  return (binding ??= createRequire(import.meta.url)('pkcs11js') as Binding);
}

/** The session dropped: reopen it and try once more. */
function sessionLost(code: number): boolean {
  const b = pkcs11();
  return [
    b.CKR_SESSION_HANDLE_INVALID,
    b.CKR_SESSION_CLOSED,
    b.CKR_DEVICE_REMOVED,
    b.CKR_TOKEN_NOT_PRESENT,
    b.CKR_USER_NOT_LOGGED_IN,
    b.CKR_DEVICE_ERROR,
    b.CKR_CRYPTOKI_NOT_INITIALIZED,
    b.CKR_OBJECT_HANDLE_INVALID,
    b.CKR_KEY_HANDLE_INVALID,
  ].includes(code);
}

/**
 * What C_Decrypt answers for a GCM tag that does not verify: CKR_ENCRYPTED_DATA_INVALID per the standard,
 * CKR_GENERAL_ERROR from SoftHSM2 (and others), which is also what a failing token says, hence the self-check.
 */
function openFailed(code: number | undefined): boolean {
  if (code === undefined) return false;
  const b = pkcs11();
  return [b.CKR_ENCRYPTED_DATA_INVALID, b.CKR_ENCRYPTED_DATA_LEN_RANGE, b.CKR_GENERAL_ERROR].includes(code);
}

interface KeyObject {
  readonly handle: Buffer;
  readonly version: number;
  readonly encrypt: boolean;
  readonly decrypt: boolean;
}

/** The GCM AAD: blob header ‖ label ‖ lp(keyId) ‖ canonical context (the local KMS's binding, as AAD). */
export function pkcs11Aad(header: Buffer, keyId: string, context: EncryptionContext): Buffer {
  return Buffer.concat([header, keyBinding(PKCS11_AAD_LABEL, keyId, context)]);
}

/** CKA_ID as a version number; undefined when it is not 1..4 bytes of a positive integer. */
function versionOf(id: Buffer): number | undefined {
  if (id.length === 0 || id.length > 4) return undefined;
  const v = id.readUIntBE(0, id.length);
  return v > 0 ? v : undefined;
}

function codeOf(e: unknown): number | undefined {
  return binding && e instanceof binding.Pkcs11Error ? e.code : undefined;
}

/** A token failure, named by its PKCS#11 function and return value only (pkcs11js never echoes arguments). */
function unavailable(e: unknown): KmsError {
  const what = binding && e instanceof binding.NativeError ? `${e.method || 'PKCS#11'}: ${e.message}` : 'PKCS#11 failure';
  return new KmsError('Unavailable', `The PKCS#11 token failed (${what.slice(0, 200)}).`);
}

export class Pkcs11Kms implements Kms {
  readonly defaultKeyId: string;
  readonly #settings: Pkcs11Settings;
  #lib: P.PKCS11 | undefined;
  #initialized = false;
  #session: Buffer | undefined;

  constructor(settings: Pkcs11Settings) {
    if (!KEY_ID_PATTERN.test(settings.defaultKeyId)) throw new RangeError(`default key id must match ${KEY_ID_PATTERN}`);
    this.#settings = settings;
    this.defaultKeyId = settings.defaultKeyId;
  }

  async generateKey(keyId: string, context: EncryptionContext): Promise<GeneratedKey> {
    return this.#withSession((p, session) => {
      const newest = this.#versions(p, session, keyId).at(-1)!;
      if (!newest.encrypt) throw new KmsError('Disabled', `${keyId} is disabled.`);
      const plaintext = p.C_GenerateRandom(session, Buffer.alloc(KEY_SIZE));
      try {
        const blob = Buffer.alloc(PKCS11_BLOB_SIZE);
        blob[0] = PKCS11_BLOB_VERSION;
        blob.writeUInt32BE(newest.version, 1);
        p.C_GenerateRandom(session, blob.subarray(HEADER_SIZE, HEADER_SIZE + IV_SIZE));
        const iv = Buffer.from(blob.subarray(HEADER_SIZE, HEADER_SIZE + IV_SIZE));
        p.C_EncryptInit(session, this.#gcm(iv, pkcs11Aad(blob.subarray(0, HEADER_SIZE), keyId, context)), newest.handle);
        const out = p.C_Encrypt(session, plaintext, Buffer.alloc(KEY_SIZE + TAG_SIZE));
        if (out.length !== KEY_SIZE + TAG_SIZE) throw new KmsError('Unavailable', 'The PKCS#11 token returned a seal of the wrong length.');
        out.copy(blob, HEADER_SIZE + IV_SIZE);
        return { plaintext, sealed: blob };
      } catch (e) {
        wipe(plaintext);
        throw e;
      }
    });
  }

  async decrypt(keyId: string, sealed: Buffer, context: EncryptionContext): Promise<Buffer> {
    if (sealed.length !== PKCS11_BLOB_SIZE || sealed[0] !== PKCS11_BLOB_VERSION) {
      throw new KmsError('InvalidCiphertext', 'The sealed key is not a PKCS#11 KMS blob of a known version.');
    }
    const version = sealed.readUInt32BE(1);
    return this.#withSession((p, session) => {
      const key = this.#versions(p, session, keyId).find((k) => k.version === version);
      if (!key) throw new KmsError('InvalidCiphertext', `${keyId} has no version ${version}.`);
      if (!key.decrypt) throw new KmsError('Disabled', `${keyId} is disabled.`);
      const iv = Buffer.from(sealed.subarray(HEADER_SIZE, HEADER_SIZE + IV_SIZE));
      p.C_DecryptInit(session, this.#gcm(iv, pkcs11Aad(sealed.subarray(0, HEADER_SIZE), keyId, context)), key.handle);
      let plaintext: Buffer;
      try {
        plaintext = p.C_Decrypt(session, Buffer.from(sealed.subarray(HEADER_SIZE + IV_SIZE)), Buffer.alloc(KEY_SIZE + TAG_SIZE));
      } catch (e) {
        if (openFailed(codeOf(e)) && this.#sealsAndOpens(p, session, key)) {
          throw new KmsError('InvalidCiphertext', 'The sealed key does not open under this key id and context.');
        }
        throw e;
      }
      try {
        if (plaintext.length !== KEY_SIZE) throw new KmsError('InvalidCiphertext', 'The sealed key does not open under this key id and context.');
        return Buffer.from(plaintext);
      } finally {
        wipe(plaintext); // a view of the output buffer: the caller gets its own copy
      }
    });
  }

  async status(keyId: string): Promise<KeyStatus> {
    try {
      const newest = await this.#withSession((p, session) => this.#versions(p, session, keyId).at(-1)!);
      return newest.encrypt && newest.decrypt ? 'enabled' : 'disabled';
    } catch (e) {
      if (e instanceof KmsError && e.code === 'NotFound') return 'missing';
      throw e;
    }
  }

  async list(): Promise<readonly string[]> {
    return this.#withSession((p, session) => {
      const labels = new Set<string>();
      for (const h of this.#find(p, session, [])) {
        const [label] = p.C_GetAttributeValue(session, h, [{ type: pkcs11().CKA_LABEL }]);
        const s = label?.value.toString('utf8') ?? '';
        if (KEY_ID_PATTERN.test(s)) labels.add(s);
      }
      return [...labels].sort();
    });
  }

  /** Closes the session (tests; a process exiting needs nothing). */
  close(): void {
    this.#drop();
  }

  #gcm(iv: Buffer, aad: Buffer): P.Mechanism {
    return { mechanism: pkcs11().CKM_AES_GCM, parameter: { type: pkcs11().CK_PARAMS_AES_GCM, iv, ivBits: IV_SIZE * 8, aad, tagBits: TAG_SIZE * 8 } as P.AesGCM };
  }

  /**
   * Whether `key` still seals and opens a random probe: after a failed C_Decrypt, tells a sealed key that does
   * not open (InvalidCiphertext) from a token that fails (Unavailable). A version that may no longer seal
   * cannot be probed; its failure is taken as the blob's.
   */
  #sealsAndOpens(p: P.PKCS11, session: Buffer, key: KeyObject): boolean {
    if (!key.encrypt) return true;
    const probe = p.C_GenerateRandom(session, Buffer.alloc(KEY_SIZE + IV_SIZE));
    const mechanism = this.#gcm(probe.subarray(KEY_SIZE), Buffer.from(PKCS11_AAD_LABEL, 'ascii'));
    p.C_EncryptInit(session, mechanism, key.handle);
    const sealed = p.C_Encrypt(session, probe.subarray(0, KEY_SIZE), Buffer.alloc(KEY_SIZE + TAG_SIZE));
    p.C_DecryptInit(session, mechanism, key.handle);
    return p.C_Decrypt(session, sealed, Buffer.alloc(KEY_SIZE + TAG_SIZE)).equals(probe.subarray(0, KEY_SIZE));
  }

  /** `keyId`'s AES key objects, oldest version first; NotFound when there is none. */
  #versions(p: P.PKCS11, session: Buffer, keyId: string): KeyObject[] {
    if (!KEY_ID_PATTERN.test(keyId)) throw new KmsError('NotFound', `Invalid keyId ${keyId.slice(0, 64)}`);
    const keys: KeyObject[] = [];
    for (const handle of this.#find(p, session, [{ type: pkcs11().CKA_LABEL, value: keyId }])) {
      const [id, encrypt, decrypt] = p.C_GetAttributeValue(session, handle, [{ type: pkcs11().CKA_ID }, { type: pkcs11().CKA_ENCRYPT }, { type: pkcs11().CKA_DECRYPT }]);
      const version = versionOf(id!.value);
      if (version === undefined) continue; // not a master key version: ignored, as an object of another label
      if (keys.some((k) => k.version === version)) throw new KmsError('Unavailable', `Two objects labelled ${keyId} have version ${version}.`);
      keys.push({ handle, version, encrypt: encrypt!.value[0] === 1, decrypt: decrypt!.value[0] === 1 });
    }
    if (keys.length === 0) throw new KmsError('NotFound', `Invalid keyId ${keyId}`);
    return keys.sort((a, b) => a.version - b.version);
  }

  /** The token's AES-256 secret keys matching `template`. */
  #find(p: P.PKCS11, session: Buffer, template: P.Template): Buffer[] {
    p.C_FindObjectsInit(session, [
      { type: pkcs11().CKA_CLASS, value: pkcs11().CKO_SECRET_KEY },
      { type: pkcs11().CKA_KEY_TYPE, value: pkcs11().CKK_AES },
      { type: pkcs11().CKA_VALUE_LEN, value: KEY_SIZE },
      ...template,
    ]);
    try {
      const found: Buffer[] = [];
      for (let batch = p.C_FindObjects(session, 64); batch.length; batch = p.C_FindObjects(session, 64)) found.push(...batch);
      return found;
    } finally {
      p.C_FindObjectsFinal(session);
    }
  }

  /** `op` in the logged-in session; once more in a new one when the token dropped it; token failures → Unavailable. */
  #withSession<T>(op: (p: P.PKCS11, session: Buffer) => T): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const [p, session] = this.#open();
        return Promise.resolve(op(p, session));
      } catch (e) {
        if (e instanceof KmsError) return Promise.reject(e);
        // A PKCS#11 return value; undefined: the binding or module did not load, or a bug.
        const code = codeOf(e);
        if (code !== undefined && code === pkcs11().CKR_KEY_FUNCTION_NOT_PERMITTED) return Promise.reject(new KmsError('Disabled', 'The key is disabled.'));
        // Any other failure may leave an operation active in the session: a new one starts clean.
        this.#drop();
        if (code === undefined) return Promise.reject(unavailable(e));
        if (code === pkcs11().CKR_CRYPTOKI_NOT_INITIALIZED) this.#initialized = false;
        if (!sessionLost(code) || attempt > 0) return Promise.reject(unavailable(e));
      }
    }
  }

  /** The module loaded and a logged-in session on the configured token, opening what is missing. */
  #open(): [P.PKCS11, Buffer] {
    let p = this.#lib;
    if (!p) {
      p = new (pkcs11().PKCS11)();
      p.load(this.#settings.module);
      this.#lib = p;
    }
    if (!this.#initialized) {
      try {
        p.C_Initialize();
      } catch (e) {
        // Another user of the module in this process initialised it already.
        if (codeOf(e) !== pkcs11().CKR_CRYPTOKI_ALREADY_INITIALIZED) throw e;
      }
      this.#initialized = true;
    }
    if (this.#session) return [p, this.#session];
    const slots = p.C_GetSlotList(true);
    const { token, slot: index } = this.#settings;
    const slot = token !== undefined ? slots.find((s) => p.C_GetTokenInfo(s).label.trim() === token) : slots[index ?? 0];
    if (!slot) throw new KmsError('Unavailable', token !== undefined ? `No PKCS#11 token labelled ${token} is present.` : `No PKCS#11 token in slot ${index ?? 0}.`);
    const session = p.C_OpenSession(slot, pkcs11().CKF_SERIAL_SESSION);
    try {
      p.C_Login(session, pkcs11().CKU_USER, this.#settings.pin);
    } catch (e) {
      if (codeOf(e) !== pkcs11().CKR_USER_ALREADY_LOGGED_IN) {
        p.C_CloseSession(session);
        throw e;
      }
    }
    this.#session = session;
    return [p, session];
  }

  /** Forgets the session, closing it if it may still be open (the module stays loaded: it may be shared). */
  #drop(): void {
    const session = this.#session;
    this.#session = undefined;
    if (session) {
      try {
        this.#lib?.C_CloseSession(session);
      } catch {
        // already gone
      }
    }
  }
}
