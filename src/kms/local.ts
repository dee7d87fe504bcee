/**
 * The `local` KMS: master keys from a JSON file the operator keeps (and backs up) apart from the store, sealing
 * with AES-256-GCM under a key derived per seal (docs/FORMAT.md §13.2). For one site or a test bed; the
 * master keys are in the proxy's memory, so a compromised proxy host exposes them (docs/SECURITY.md).
 *
 * File: `{"<key id>": "<base64 of 32 bytes>", "<key id>": {"versions": ["<base64>", …], "disabled": true}, …}`.
 * The first id is the default master key (unless SSEC_PROXY_KMS_DEFAULT_KEY names another). A key's newest version seals new keys; older versions still
 * decrypt (rotation: add a version, then re-wrap objects by copying them onto themselves). A disabled key
 * neither seals nor decrypts (the objects under it are unreadable until it is enabled again; deleting it
 * from the file erases them).
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes as cryptoRandomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hkdfSha256 } from '../format/chunk.ts';
import { wipe } from '../sse-c/data-key.ts';
import { KEY_ID_PATTERN, keyBinding, KmsError, type EncryptionContext, type GeneratedKey, type KeyStatus, type Kms } from './kms.ts';

/** Blob version 1 (changing any of these breaks stored data). */
export const LOCAL_BLOB_VERSION = 1;
export const LOCAL_INFO_LABEL = 's3-ssec-proxy/v1/kms-local';
const HEADER_SIZE = 5; // version u8 ‖ key version u32be
const SALT_SIZE = 32;
const KEY_SIZE = 32;
const TAG_SIZE = 16;
export const LOCAL_BLOB_SIZE = HEADER_SIZE + SALT_SIZE + KEY_SIZE + TAG_SIZE; // 85
/** Each derived key seals exactly one external key (fresh salt per seal), so a fixed nonce is safe. */
const ZERO_NONCE = Buffer.alloc(12);

interface MasterKey {
  /** versions[0] is version 1. */
  readonly versions: readonly Buffer[];
  readonly disabled: boolean;
}

/** The per-seal key: HKDF(master key version, salt, label ‖ lp(keyId) ‖ canonical context). */
export function localKek(master: Buffer, salt: Buffer, keyId: string, context: EncryptionContext): Buffer {
  return hkdfSha256(master, salt, keyBinding(LOCAL_INFO_LABEL, keyId, context));
}

/**
 * Where a JSON text stops parsing, never what it holds there: node's own message quotes the text around the
 * error, which in a keys or credentials file is a secret.
 */
export function jsonSyntaxProblem(error: unknown, text: string): string {
  const msg = error instanceof Error ? error.message : '';
  const at = /line (\d+) column (\d+)/.exec(msg) ?? undefined;
  if (at) return `not valid JSON (line ${at[1]}, column ${at[2]})`;
  const pos = /position (\d+)/.exec(msg);
  if (pos) {
    const before = text.slice(0, Number(pos[1]));
    const line = before.split('\n').length;
    return `not valid JSON (line ${line}, column ${before.length - before.lastIndexOf('\n')})`;
  }
  return /end of JSON input/i.test(msg) ? 'not valid JSON (it ends too early)' : 'not valid JSON';
}

/** Parses the keys file's JSON; throws an Error listing what is wrong (never a key's value). */
export function parseLocalKeys(text: string): Map<string, MasterKey> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(jsonSyntaxProblem(e, text));
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('must be a JSON object {"<key id>": "<base64 of 32 bytes>", …}');
  const keys = new Map<string, MasterKey>();
  const problems: string[] = [];
  const decode = (id: string, v: unknown): Buffer | undefined => {
    const b = typeof v === 'string' && /^[A-Za-z0-9+/]{43}=$/.test(v.trim()) ? Buffer.from(v.trim(), 'base64') : undefined;
    if (b?.length !== KEY_SIZE) problems.push(`key "${id}": each version must be the base64 of 32 bytes`);
    return b?.length === KEY_SIZE ? b : undefined;
  };
  for (const [id, v] of Object.entries(doc)) {
    if (!KEY_ID_PATTERN.test(id)) {
      problems.push(`key id "${id.slice(0, 64)}" must match ${KEY_ID_PATTERN}`);
      continue;
    }
    const spec = typeof v === 'string' ? { versions: [v] } : (v as { versions?: unknown; disabled?: unknown });
    if (!spec || typeof spec !== 'object' || !Array.isArray(spec.versions) || spec.versions.length === 0) {
      problems.push(`key "${id}": must be a base64 string or {"versions": ["<base64>", …], "disabled": false}`);
      continue;
    }
    const versions = spec.versions.map((x: unknown) => decode(id, x));
    if (spec.disabled !== undefined && typeof spec.disabled !== 'boolean') problems.push(`key "${id}": "disabled" must be true or false`);
    if (versions.every((b): b is Buffer => b !== undefined)) keys.set(id, { versions, disabled: spec.disabled === true });
  }
  if (keys.size === 0 && problems.length === 0) problems.push('holds no key');
  if (problems.length) throw new Error(problems.join('; '));
  return keys;
}

export class LocalKms implements Kms {
  readonly defaultKeyId: string;
  readonly #keys: Map<string, MasterKey>;
  readonly #random: (n: number) => Buffer;

  constructor(keys: Map<string, MasterKey>, options: { randomBytes?: (n: number) => Buffer; defaultKeyId?: string | undefined } = {}) {
    if (keys.size === 0) throw new RangeError('LocalKms needs at least one master key');
    if (options.defaultKeyId !== undefined && !keys.has(options.defaultKeyId)) throw new RangeError('the default key id is not in the keys file');
    this.#keys = keys;
    this.defaultKeyId = options.defaultKeyId ?? keys.keys().next().value!;
    this.#random = options.randomBytes ?? cryptoRandomBytes;
  }

  /** From the JSON keys file at `path` (SSEC_PROXY_KMS_LOCAL_KEYS); the default is its first key unless named. */
  static fromFile(path: string, defaultKeyId?: string): LocalKms {
    return new LocalKms(parseLocalKeys(readFileSync(path, 'utf8')), { defaultKeyId });
  }

  #usable(keyId: string): MasterKey {
    const key = this.#keys.get(keyId);
    if (!key) throw new KmsError('NotFound', `Invalid keyId ${keyId}`);
    if (key.disabled) throw new KmsError('Disabled', `${keyId} is disabled.`);
    return key;
  }

  async generateKey(keyId: string, context: EncryptionContext): Promise<GeneratedKey> {
    const key = this.#usable(keyId);
    const version = key.versions.length;
    const plaintext = this.#draw(KEY_SIZE);
    const salt = this.#draw(SALT_SIZE);
    const blob = Buffer.alloc(LOCAL_BLOB_SIZE);
    blob[0] = LOCAL_BLOB_VERSION;
    blob.writeUInt32BE(version, 1);
    salt.copy(blob, HEADER_SIZE);
    const kek = localKek(key.versions[version - 1]!, salt, keyId, context);
    const cipher = createCipheriv('aes-256-gcm', createSecretKey(kek), ZERO_NONCE, { authTagLength: TAG_SIZE });
    cipher.setAAD(blob.subarray(0, HEADER_SIZE));
    Buffer.concat([cipher.update(plaintext), cipher.final()]).copy(blob, HEADER_SIZE + SALT_SIZE);
    cipher.getAuthTag().copy(blob, HEADER_SIZE + SALT_SIZE + KEY_SIZE);
    wipe(kek);
    return { plaintext, sealed: blob };
  }

  async decrypt(keyId: string, sealed: Buffer, context: EncryptionContext): Promise<Buffer> {
    const key = this.#usable(keyId);
    if (sealed.length !== LOCAL_BLOB_SIZE || sealed[0] !== LOCAL_BLOB_VERSION) {
      throw new KmsError('InvalidCiphertext', 'The sealed key is not a local KMS blob of a known version.');
    }
    const version = sealed.readUInt32BE(1);
    const master = key.versions[version - 1];
    if (!master) throw new KmsError('InvalidCiphertext', `${keyId} has no version ${version}.`);
    const kek = localKek(master, sealed.subarray(HEADER_SIZE, HEADER_SIZE + SALT_SIZE), keyId, context);
    const decipher = createDecipheriv('aes-256-gcm', createSecretKey(kek), ZERO_NONCE, { authTagLength: TAG_SIZE });
    decipher.setAAD(sealed.subarray(0, HEADER_SIZE));
    decipher.setAuthTag(sealed.subarray(HEADER_SIZE + SALT_SIZE + KEY_SIZE));
    const plaintext = decipher.update(sealed.subarray(HEADER_SIZE + SALT_SIZE, HEADER_SIZE + SALT_SIZE + KEY_SIZE));
    try {
      decipher.final();
    } catch (cause) {
      wipe(plaintext);
      throw new KmsError('InvalidCiphertext', 'The sealed key does not open under this key id and context.', { cause });
    } finally {
      wipe(kek);
    }
    return plaintext;
  }

  async status(keyId: string): Promise<KeyStatus> {
    const key = this.#keys.get(keyId);
    return !key ? 'missing' : key.disabled ? 'disabled' : 'enabled';
  }

  async list(): Promise<readonly string[]> {
    return [...this.#keys.keys()];
  }

  /** How many versions `keyId` has (the newest seals new keys); 0 when unknown. */
  versions(keyId: string): number {
    return this.#keys.get(keyId)?.versions.length ?? 0;
  }

  #draw(n: number): Buffer {
    const b = this.#random(n);
    if (!Buffer.isBuffer(b) || b.length !== n) throw new RangeError(`randomBytes(${n}) returned the wrong length`);
    return Buffer.from(b);
  }
}
