/**
 * SSE-S3 and SSE-KMS as S3 speaks them: the `x-amz-server-side-encryption*` request headers, the answer's
 * headers, the encryption context an object's key is bound to, and the metadata entry that carries the sealed
 * external key (docs/FORMAT.md §13). The object itself is stored exactly as an SSE-C object whose customer key
 * is the KMS's external key: one format, one reader.
 */
import { S3Error } from '../s3/errors.ts';
import { KEY_ID_PATTERN, KmsError, type EncryptionContext } from '../kms/kms.ts';

/** The metadata entry of an SSE-S3/KMS object (under the reserved prefix: never shown to clients, never accepted). */
export const KMS_META = 'x-amz-meta-s3-ssec-proxy-kms';

/** S3's names for the two modes, as in `x-amz-server-side-encryption`. */
export type ManagedMode = 'AES256' | 'aws:kms';

/** How an SSE-S3/KMS object's key is managed: enough to ask the KMS for it again. */
export interface ManagedKey {
  readonly mode: ManagedMode;
  /** The master key id. */
  readonly keyId: string;
  /** The client's `x-amz-server-side-encryption-context` (base64 JSON), as given. */
  readonly context?: string | undefined;
}

type Headers = Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function invalid(name: string, message: string, value?: string): S3Error {
  return new S3Error('InvalidArgument', message, { extra: { ArgumentName: name, ...(value !== undefined ? { ArgumentValue: value.slice(0, 64) } : {}) } });
}

/** The client's encryption context: base64 of a JSON object of strings (S3 checks the same). */
function parseContext(text: string): Record<string, string> {
  const fail = () => invalid('x-amz-server-side-encryption-context', 'Invalid encryption context. It must be a base64-encoded JSON object of string values.');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw fail();
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(text, 'base64').toString('utf8'));
  } catch {
    throw fail();
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc) || Object.values(doc).some((v) => typeof v !== 'string')) throw fail();
  return doc as Record<string, string>;
}

/**
 * The SSE-S3/KMS a write asks for, or undefined when it names none. `defaultKeyId` fills in SSE-S3 and SSE-KMS
 * without a key id (undefined: no KMS configured, and any such request is refused).
 */
export function parseManagedRequest(headers: Headers, defaultKeyId: string | undefined): ManagedKey | undefined {
  const sse = header(headers, 'x-amz-server-side-encryption');
  const keyId = header(headers, 'x-amz-server-side-encryption-aws-kms-key-id');
  const context = header(headers, 'x-amz-server-side-encryption-context');
  if (sse === undefined) {
    if (keyId !== undefined || context !== undefined) {
      throw invalid('x-amz-server-side-encryption', 'Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms');
    }
    return undefined;
  }
  if (sse !== 'AES256' && sse !== 'aws:kms') throw invalid('x-amz-server-side-encryption', 'The encryption method specified is not supported', sse);
  if (sse === 'AES256' && (keyId !== undefined || context !== undefined)) {
    throw invalid('x-amz-server-side-encryption', 'Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms', sse);
  }
  if (context !== undefined) parseContext(context);
  if (keyId !== undefined && !KEY_ID_PATTERN.test(keyId)) throw kmsS3Error(new KmsError('NotFound', `Invalid keyId ${keyId.slice(0, 64)}`));
  if (defaultKeyId === undefined) {
    throw new S3Error('InvalidArgument', 'Server-side encryption with SSE-S3 or SSE-KMS is not configured on this endpoint.', {
      extra: { ArgumentName: 'x-amz-server-side-encryption', ArgumentValue: sse },
    });
  }
  return { mode: sse, keyId: keyId ?? defaultKeyId, ...(context !== undefined ? { context } : {}) };
}

/** What the object's external key is bound to: its ARN (as S3 binds SSE-KMS keys) and the client's context. */
export function encryptionContext(k: Pick<ManagedKey, 'context'>, bucket: string, key: string): EncryptionContext {
  return { ...(k.context !== undefined ? parseContext(k.context) : {}), 'aws:s3:arn': `arn:aws:s3:::${bucket}/${key}` };
}

/** The answer's headers for an SSE-S3/KMS object, as S3 sends them. */
export function managedEchoHeaders(k: ManagedKey, write: boolean): Record<string, string> {
  if (k.mode === 'AES256') return { 'x-amz-server-side-encryption': 'AES256' };
  return {
    'x-amz-server-side-encryption': 'aws:kms',
    'x-amz-server-side-encryption-aws-kms-key-id': k.keyId,
    ...(write && k.context !== undefined ? { 'x-amz-server-side-encryption-context': k.context } : {}),
  };
}

/** The KMS_META value: `1;<mode>;<key id>;<base64url sealed key>[;<client context>]`. */
export function formatKmsMeta(k: ManagedKey, sealed: Buffer): string {
  return ['1', k.mode, k.keyId, sealed.toString('base64url'), ...(k.context !== undefined ? [k.context] : [])].join(';');
}

/** The stored entry back; anything else is an object the proxy did not write (integrity failure). */
export function parseKmsMeta(value: string): { key: ManagedKey; sealed: Buffer } {
  const f = value.split(';');
  const [version, mode, keyId, sealed, context] = f;
  if (
    f.length < 4 ||
    f.length > 5 ||
    version !== '1' ||
    (mode !== 'AES256' && mode !== 'aws:kms') ||
    !KEY_ID_PATTERN.test(keyId ?? '') ||
    !/^[A-Za-z0-9_-]+$/.test(sealed ?? '')
  ) {
    throw new S3Error('InternalError', 'The stored object failed its integrity check.');
  }
  return { key: { mode, keyId: keyId!, ...(context !== undefined ? { context } : {}) }, sealed: Buffer.from(sealed!, 'base64url') };
}

/**
 * A KMS failure as S3 answers it: the KMS's own exception name under `KMS.` (what S3 relays from AWS KMS), a
 * retryable 503 when the KMS cannot be reached. Never a 500.
 */
export function kmsS3Error(e: KmsError): S3Error {
  switch (e.code) {
    case 'NotFound':
      return new S3Error('KMS.NotFoundException', e.message, { cause: e });
    case 'Disabled':
      return new S3Error('KMS.DisabledException', e.message, { cause: e });
    case 'InvalidCiphertext':
      return new S3Error('KMS.InvalidCiphertextException', 'The object key stored with this object does not open under its KMS key.', { cause: e });
    case 'Unavailable':
      return new S3Error('KMS.DependencyTimeoutException', 'The key management service is unavailable. Please retry.', { cause: e });
  }
}
