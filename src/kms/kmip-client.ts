/**
 * A small KMIP 1.4 client (OASIS KMIP Specification v1.4): request/response messages in TTLV (ttlv.ts) over
 * mutually authenticated TLS. Only the operations the `kmip` KMS and its
 * operators' tests need: Create, Register, Activate, Locate, Get, Get Attributes, Revoke, Destroy, Encrypt,
 * Decrypt, on symmetric keys.
 *
 * A few connections, each carrying one call at a time (KMIP answers in order on a connection). Every call has a
 * deadline covering the wait for a connection, connect, handshake and answer; a connection that failed, timed out
 * or answered something unparseable is dropped and the next call opens a new one, so a KMIP server restart is
 * survived without the caller knowing. Failures are KmipError: `kind` 'result' carries the server's Result
 * Reason, 'transport' anything else. Nothing here logs or puts key material in an error.
 */
import { connect, type TLSSocket } from 'node:tls';
import { bytes, child, children, decode, encode, enumeration, int, struct, text, type Item } from './ttlv.ts';

/** Tags (KMIP 1.4 §9.1.3.1). */
export const Tag = {
  ApplicationData: 0x420002,
  ApplicationNamespace: 0x420003,
  ApplicationSpecificInformation: 0x420004,
  Attribute: 0x420008,
  AttributeName: 0x42000a,
  AttributeValue: 0x42000b,
  Authentication: 0x42000c,
  BatchCount: 0x42000d,
  BatchItem: 0x42000f,
  BlockCipherMode: 0x420011,
  Credential: 0x420023,
  CredentialType: 0x420024,
  CredentialValue: 0x420025,
  CryptographicAlgorithm: 0x420028,
  CryptographicLength: 0x42002a,
  CryptographicParameters: 0x42002b,
  CryptographicUsageMask: 0x42002c,
  IvCounterNonce: 0x42003d,
  KeyBlock: 0x420040,
  KeyFormatType: 0x420042,
  KeyMaterial: 0x420043,
  KeyValue: 0x420045,
  MaximumItems: 0x42004f,
  Name: 0x420053,
  NameType: 0x420054,
  NameValue: 0x420055,
  ObjectType: 0x420057,
  Operation: 0x42005c,
  ProtocolVersion: 0x420069,
  ProtocolVersionMajor: 0x42006a,
  ProtocolVersionMinor: 0x42006b,
  RequestHeader: 0x420077,
  RequestMessage: 0x420078,
  RequestPayload: 0x420079,
  ResponseHeader: 0x42007a,
  ResponseMessage: 0x42007b,
  ResponsePayload: 0x42007c,
  ResultMessage: 0x42007d,
  ResultReason: 0x42007e,
  ResultStatus: 0x42007f,
  RevocationReason: 0x420081,
  RevocationReasonCode: 0x420082,
  State: 0x42008d,
  SymmetricKey: 0x42008f,
  TemplateAttribute: 0x420091,
  UniqueIdentifier: 0x420094,
  Username: 0x420099,
  Password: 0x4200a1,
  TagLength: 0x4200ce,
  Data: 0x4200c2,
  AuthenticatedEncryptionAdditionalData: 0x4200fe,
  AuthenticatedEncryptionTag: 0x4200ff,
} as const;

/** Operations (§9.1.3.2.27). */
export const Operation = { Create: 1, Register: 3, Locate: 8, Get: 10, GetAttributes: 11, Activate: 18, Revoke: 19, Destroy: 20, Encrypt: 31, Decrypt: 32 } as const;

/** States (§9.1.3.2.17). */
export const State = { PreActive: 1, Active: 2, Deactivated: 3, Compromised: 4, Destroyed: 5, DestroyedCompromised: 6 } as const;

/** Result reasons this client tells apart (§9.1.3.2.29). */
export const ResultReason = {
  ItemNotFound: 1,
  AuthenticationNotSuccessful: 3,
  InvalidField: 7,
  CryptographicFailure: 10,
  IllegalOperation: 11,
  PermissionDenied: 12,
  GeneralFailure: 256,
} as const;

const ObjectType = { SymmetricKey: 2 } as const;
const Algorithm = { AES: 3 } as const;
const BlockCipherMode = { GCM: 9 } as const;
const UsageMask = { Encrypt: 4, Decrypt: 8 } as const;
const NameType = { UninterpretedTextString: 1 } as const;
const KeyFormatType = { Raw: 1 } as const;
const RevocationReasonCode = { CessationOfOperation: 6 } as const;
const CredentialType = { UsernameAndPassword: 1 } as const;
/** Encrypt/Decrypt need 1.2, their GCM additional data and tag fields 1.4. */
const PROTOCOL = [1, 4] as const;
/** No answer of ours is anywhere near this; a larger length is a broken or hostile peer. */
const MAX_MESSAGE = 1 << 20;

/** Operations sent again after a kept connection closed unanswered: they change nothing on the server. */
const RETRYABLE: ReadonlySet<number> = new Set([Operation.Locate, Operation.Get, Operation.GetAttributes, Operation.Encrypt, Operation.Decrypt]);

export class KmipError extends Error {
  override readonly name = 'KmipError';
  constructor(
    /** 'result': the server answered Operation Failed with `reason`; 'transport': no usable answer. */
    readonly kind: 'result' | 'transport',
    message: string,
    readonly reason?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A kept connection closed before any answer (internal: `call` retries or unwraps it). */
class StaleConnection extends Error {
  constructor(readonly error: KmipError) {
    super(error.message);
  }
}

export interface KmipClientOptions {
  readonly host: string;
  readonly port: number;
  /** PEM: the CA that issued the server's certificate (undefined: the system's CAs). */
  readonly ca?: string | Buffer | undefined;
  /** PEM: the client certificate and its private key (the server's access control is by this identity). */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** The name the server's certificate must carry (default: host). */
  readonly serverName?: string | undefined;
  /** The deadline of each call, waiting for a connection included. @default 5000 */
  readonly timeoutMs?: number | undefined;
  /** Calls in flight at once, each on its own connection. @default 4 */
  readonly maxConnections?: number | undefined;
  /** A Username and Password credential sent in every request's header, for servers that ask for one besides the certificate. */
  readonly credentials?: { readonly username: string; readonly password: string } | undefined;
}

/** An attribute as Create and Register take it. */
export type Attribute = { readonly name: string; readonly value: Item };

/** What GetAttributes answers, for the attributes the `kmip` KMS reads. */
export interface KeyAttributes {
  readonly uid: string;
  readonly state?: number | undefined;
  readonly names: readonly string[];
  /** Application Specific Information entries as namespace → data. */
  readonly appInfo: ReadonlyArray<readonly [string, string]>;
}

/** `Name` as an attribute value. */
export function nameAttribute(name: string): Attribute {
  return { name: 'Name', value: struct(Tag.AttributeValue, text(Tag.NameValue, name), enumeration(Tag.NameType, NameType.UninterpretedTextString)) };
}

/** `Application Specific Information` as an attribute value. */
export function appInfoAttribute(namespace: string, data: string): Attribute {
  return { name: 'Application Specific Information', value: struct(Tag.AttributeValue, text(Tag.ApplicationNamespace, namespace), text(Tag.ApplicationData, data)) };
}

function attribute(a: Attribute): Item {
  return struct(Tag.Attribute, text(Tag.AttributeName, a.name), a.value);
}

/** AES-256 for encryption and decryption: what a master key is created or registered with. */
const AES_KEY_ATTRIBUTES: readonly Attribute[] = [
  { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, Algorithm.AES) },
  { name: 'Cryptographic Length', value: int(Tag.AttributeValue, 256) },
  { name: 'Cryptographic Usage Mask', value: int(Tag.AttributeValue, UsageMask.Encrypt | UsageMask.Decrypt) },
];

function gcmParameters(): Item {
  return struct(
    Tag.CryptographicParameters,
    enumeration(Tag.BlockCipherMode, BlockCipherMode.GCM),
    enumeration(Tag.CryptographicAlgorithm, Algorithm.AES),
    int(Tag.TagLength, 16),
  );
}

/** The request message for one operation (§7.2), with a Username and Password credential (§2.1.2) if given. */
export function requestMessage(operation: number, payload: Item[], credentials?: KmipClientOptions['credentials']): Buffer {
  return encode(
    struct(
      Tag.RequestMessage,
      struct(
        Tag.RequestHeader,
        struct(Tag.ProtocolVersion, int(Tag.ProtocolVersionMajor, PROTOCOL[0]), int(Tag.ProtocolVersionMinor, PROTOCOL[1])),
        credentials &&
          struct(
            Tag.Authentication,
            struct(
              Tag.Credential,
              enumeration(Tag.CredentialType, CredentialType.UsernameAndPassword),
              struct(Tag.CredentialValue, text(Tag.Username, credentials.username), text(Tag.Password, credentials.password)),
            ),
          ),
        int(Tag.BatchCount, 1),
      ),
      struct(Tag.BatchItem, enumeration(Tag.Operation, operation), struct(Tag.RequestPayload, ...payload)),
    ),
  );
}

/** The payload of a one-item response message, or the KmipError it reports. */
export function responsePayload(message: Item, operation: number): Item | undefined {
  if (message.tag !== Tag.ResponseMessage) throw new KmipError('transport', 'The KMIP server answered something other than a response message.');
  const items = children(message, Tag.BatchItem);
  if (items.length !== 1) throw new KmipError('transport', `The KMIP server answered ${items.length} batch items to one.`);
  const item = items[0]!;
  const status = child(item, Tag.ResultStatus)?.value;
  if (status !== 0) {
    const reason = child(item, Tag.ResultReason)?.value;
    const said = child(item, Tag.ResultMessage)?.value;
    const text = typeof said === 'string' ? `: ${said.slice(0, 200)}` : '';
    return throwResult(typeof reason === 'number' ? reason : undefined, `KMIP operation ${operation} failed (reason ${String(reason)})${text}`);
  }
  const op = child(item, Tag.Operation)?.value;
  if (op !== undefined && op !== operation) throw new KmipError('transport', `The KMIP server answered operation ${String(op)} to ${operation}.`);
  return child(item, Tag.ResponsePayload);
}

function throwResult(reason: number | undefined, message: string): never {
  throw new KmipError('result', message, reason);
}

function textOf(item: Item | undefined, what: string): string {
  if (item?.type !== 'text') throw new KmipError('transport', `The KMIP server's answer has no ${what}.`);
  return item.value;
}

function bytesOf(item: Item | undefined, what: string): Buffer {
  if (item?.type !== 'bytes') throw new KmipError('transport', `The KMIP server's answer has no ${what}.`);
  return item.value;
}

export class KmipClient {
  readonly #options: KmipClientOptions;
  /** Open connections, each carrying one call at a time; the idle ones wait for the next call. */
  readonly #open = new Set<TLSSocket>();
  readonly #idle: TLSSocket[] = [];
  #busy = 0;
  /** Calls waiting for one of the `maxConnections` slots. */
  readonly #waiting: Array<() => void> = [];

  constructor(options: KmipClientOptions) {
    this.#options = options;
  }

  /** Creates an AES-256 key with `attributes` (e.g. its Name); its Unique Identifier. Pre-Active until activated. */
  async create(attributes: readonly Attribute[]): Promise<string> {
    const p = await this.call(Operation.Create, [
      enumeration(Tag.ObjectType, ObjectType.SymmetricKey),
      struct(Tag.TemplateAttribute, ...[...AES_KEY_ATTRIBUTES, ...attributes].map(attribute)),
    ]);
    return textOf(child(p, Tag.UniqueIdentifier), 'unique identifier');
  }

  /** Registers the 32 bytes `key` as an AES-256 key with `attributes`; its Unique Identifier. */
  async register(key: Buffer, attributes: readonly Attribute[]): Promise<string> {
    const p = await this.call(Operation.Register, [
      enumeration(Tag.ObjectType, ObjectType.SymmetricKey),
      struct(Tag.TemplateAttribute, ...[...AES_KEY_ATTRIBUTES, ...attributes].map(attribute)),
      struct(
        Tag.SymmetricKey,
        struct(
          Tag.KeyBlock,
          enumeration(Tag.KeyFormatType, KeyFormatType.Raw),
          struct(Tag.KeyValue, bytes(Tag.KeyMaterial, key)),
          enumeration(Tag.CryptographicAlgorithm, Algorithm.AES),
          int(Tag.CryptographicLength, 256),
        ),
      ),
    ]);
    return textOf(child(p, Tag.UniqueIdentifier), 'unique identifier');
  }

  async activate(uid: string): Promise<void> {
    await this.call(Operation.Activate, [text(Tag.UniqueIdentifier, uid)]);
  }

  /** Revokes (Active → Deactivated) for cessation of operation: KMIP has no way back to Active. */
  async revoke(uid: string): Promise<void> {
    await this.call(Operation.Revoke, [text(Tag.UniqueIdentifier, uid), struct(Tag.RevocationReason, enumeration(Tag.RevocationReasonCode, RevocationReasonCode.CessationOfOperation))]);
  }

  async destroy(uid: string): Promise<void> {
    await this.call(Operation.Destroy, [text(Tag.UniqueIdentifier, uid)]);
  }

  /** The key bytes of a symmetric key (for an operator re-registering a revoked key; the KMS never calls it). */
  async get(uid: string): Promise<Buffer> {
    const p = await this.call(Operation.Get, [text(Tag.UniqueIdentifier, uid)]);
    return bytesOf(child(child(child(child(p, Tag.SymmetricKey), Tag.KeyBlock), Tag.KeyValue), Tag.KeyMaterial), 'key material');
  }

  /** The Unique Identifiers of the symmetric keys named `name` (and in `state`, if given). */
  async locate(name: string, state?: number): Promise<string[]> {
    const p = await this.call(Operation.Locate, [
      int(Tag.MaximumItems, 1000),
      attribute({ name: 'Object Type', value: enumeration(Tag.AttributeValue, ObjectType.SymmetricKey) }),
      attribute(nameAttribute(name)),
      ...(state !== undefined ? [attribute({ name: 'State', value: enumeration(Tag.AttributeValue, state) })] : []),
    ]);
    return children(p, Tag.UniqueIdentifier).map((u) => textOf(u, 'unique identifier'));
  }

  /** The State, Names and Application Specific Information of `uid`. */
  async attributes(uid: string): Promise<KeyAttributes> {
    const p = await this.call(Operation.GetAttributes, [
      text(Tag.UniqueIdentifier, uid),
      ...['State', 'Name', 'Application Specific Information'].map((n) => text(Tag.AttributeName, n)),
    ]);
    let state: number | undefined;
    const names: string[] = [];
    const appInfo: Array<[string, string]> = [];
    for (const a of children(p, Tag.Attribute)) {
      const name = child(a, Tag.AttributeName)?.value;
      const value = child(a, Tag.AttributeValue);
      if (name === 'State' && value?.type === 'enumeration') state = value.value;
      else if (name === 'Name') names.push(textOf(child(value, Tag.NameValue), 'name'));
      else if (name === 'Application Specific Information') {
        appInfo.push([textOf(child(value, Tag.ApplicationNamespace), 'namespace'), textOf(child(value, Tag.ApplicationData), 'application data')]);
      }
    }
    return { uid, state, names, appInfo };
  }

  /** AES-GCM with the server's key `uid`: the ciphertext and the 16-byte tag. */
  async encryptGcm(uid: string, plaintext: Buffer, iv: Buffer, aad: Buffer): Promise<{ ciphertext: Buffer; tag: Buffer }> {
    const p = await this.call(Operation.Encrypt, [
      text(Tag.UniqueIdentifier, uid),
      gcmParameters(),
      bytes(Tag.Data, plaintext),
      bytes(Tag.IvCounterNonce, iv),
      bytes(Tag.AuthenticatedEncryptionAdditionalData, aad),
    ]);
    return { ciphertext: bytesOf(child(p, Tag.Data), 'ciphertext'), tag: bytesOf(child(p, Tag.AuthenticatedEncryptionTag), 'authentication tag') };
  }

  /** AES-GCM decryption with the server's key `uid`; a tag that does not verify is a failed operation. */
  async decryptGcm(uid: string, ciphertext: Buffer, iv: Buffer, aad: Buffer, tag: Buffer): Promise<Buffer> {
    const p = await this.call(Operation.Decrypt, [
      text(Tag.UniqueIdentifier, uid),
      gcmParameters(),
      bytes(Tag.Data, ciphertext),
      bytes(Tag.IvCounterNonce, iv),
      bytes(Tag.AuthenticatedEncryptionAdditionalData, aad),
      bytes(Tag.AuthenticatedEncryptionTag, tag),
    ]);
    return bytesOf(child(p, Tag.Data), 'plaintext');
  }

  /** Closes every connection (a later call opens a new one). */
  close(): void {
    for (const socket of this.#open) socket.destroy();
    this.#open.clear();
    this.#idle.length = 0;
  }

  /**
   * One operation; its response payload. Up to `maxConnections` calls are in flight, each on a connection of its
   * own; more wait their turn, within the same deadline. A kept connection the server closed (servers drop idle
   * ones) without a byte of answer is replaced and a read-only or crypto operation sent again on a new one, once;
   * an operation that changes the server is not (it may have been done).
   */
  async call(operation: number, payload: Item[]): Promise<Item | undefined> {
    const request = requestMessage(operation, payload, this.#options.credentials);
    const timeoutMs = this.#options.timeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new KmipError('transport', `The KMIP server did not answer within ${timeoutMs} ms.`)), timeoutMs);
    });
    let abandoned = false;
    const attempt = async () => {
      await this.#slot();
      try {
        if (abandoned) throw new KmipError('transport', 'The call was abandoned.');
        return await this.#exchange(operation, request, late).catch((e: unknown) => {
          if (e instanceof StaleConnection && RETRYABLE.has(operation)) return this.#exchange(operation, request, late);
          throw e instanceof StaleConnection ? e.error : e;
        });
      } finally {
        this.#release();
      }
    };
    try {
      return await Promise.race([attempt(), late]);
    } finally {
      abandoned = true; // a call still waiting for a slot when its deadline passed is never sent
      clearTimeout(timer);
    }
  }

  async #slot(): Promise<void> {
    while (this.#busy >= (this.#options.maxConnections ?? 4)) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#busy++;
  }

  #release(): void {
    this.#busy--;
    this.#waiting.shift()?.();
  }

  /** One request and its answer on an idle connection or a new one; the connection is kept only after an answer. */
  async #exchange(operation: number, request: Buffer, late: Promise<never>): Promise<Item | undefined> {
    let socket: TLSSocket | undefined;
    let kept = false;
    let gaveUp = false;
    try {
      const answer = new Promise<Item | undefined>((resolve, reject) => {
        this.#connection().then((c) => {
          if (gaveUp) {
            c.socket.destroy(); // connected after the deadline: never sent
            return;
          }
          const s = (socket = c.socket);
          kept = c.kept;
          let buffered = Buffer.alloc(0);
          const onData = (chunk: Buffer) => {
            buffered = Buffer.concat([buffered, chunk]);
            if (buffered.length < 8) return;
            const total = 8 + buffered.readUInt32BE(4);
            if (total > MAX_MESSAGE) return fail(new KmipError('transport', 'The KMIP server answered an oversized message.'));
            if (buffered.length < total) return;
            if (buffered.length > total) return fail(new KmipError('transport', 'The KMIP server sent bytes past its answer.'));
            done();
            try {
              resolve(responsePayload(decode(buffered), operation));
            } catch (e) {
              reject(e instanceof KmipError ? e : new KmipError('transport', 'The KMIP server answered a malformed message.', undefined, { cause: e }));
            } finally {
              buffered.fill(0); // may hold an external key (Decrypt); the decoded values are copies
            }
          };
          const onEnd = () => fail(new KmipError('transport', 'The KMIP server closed the connection.'));
          const onError = (e: Error) => fail(new KmipError('transport', `The KMIP connection failed (${e.message.slice(0, 200)}).`, undefined, { cause: e }));
          const done = () => {
            s.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onError);
          };
          const fail = (e: KmipError) => {
            done();
            // Closed with no answer at all on a connection kept from an earlier call: likely dropped while idle.
            reject(kept && buffered.length === 0 ? new StaleConnection(e) : e);
          };
          s.on('data', onData).once('end', onEnd).once('close', onEnd).once('error', onError);
          s.write(request);
        }, reject);
      });
      const payload = await Promise.race([answer, late]);
      this.#idle.push(socket!);
      return payload;
    } catch (e) {
      gaveUp = true;
      if (e instanceof KmipError && e.kind === 'result') {
        this.#idle.push(socket!); // a full answer: the connection is in step
      } else if (socket) {
        // The connection's state is unknown (a late answer would be read as the next call's): drop it.
        socket.destroy();
        this.#open.delete(socket);
      }
      throw e;
    }
  }

  /** An idle connection (kept), or a new one once its TLS handshake (server certificate checked) completes. */
  #connection(): Promise<{ socket: TLSSocket; kept: boolean }> {
    for (let s = this.#idle.pop(); s; s = this.#idle.pop()) {
      if (!s.destroyed && s.writable) return Promise.resolve({ socket: s, kept: true });
      this.#open.delete(s);
    }
    const o = this.#options;
    return new Promise((resolve, reject) => {
      const s = connect({
        host: o.host,
        port: o.port,
        ca: o.ca,
        cert: o.cert,
        key: o.key,
        servername: o.serverName ?? (/^[\d.]+$|:/.test(o.host) ? undefined : o.host),
        minVersion: 'TLSv1.2',
      });
      this.#open.add(s);
      s.once('close', () => this.#open.delete(s));
      const onError = (e: Error) => {
        s.destroy();
        reject(new KmipError('transport', `Could not connect to the KMIP server at ${o.host}:${o.port} (${e.message.slice(0, 200)}).`, undefined, { cause: e }));
      };
      s.once('error', onError);
      s.once('secureConnect', () => {
        s.off('error', onError);
        // Errors between calls only mark the socket dead; the next call takes another.
        s.on('error', () => s.destroy());
        resolve({ socket: s, kept: false });
      });
    });
  }
}

/** True when `e` is the server refusing an operation for `reason`. */
export function isResult(e: unknown, ...reasons: number[]): e is KmipError {
  return e instanceof KmipError && e.kind === 'result' && e.reason !== undefined && reasons.includes(e.reason);
}

