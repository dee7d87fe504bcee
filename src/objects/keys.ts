/**
 * Which key encrypts an object, for every operation: the client's SSE-C key, or the external key the KMS gives
 * for an SSE-S3/KMS object (a new one for a write, the stored one unwrapped for a read), or none. Past this
 * point an SSE-S3/KMS object is an SSE-C object whose customer key is its external key (`CustomerKey.managed`
 * set), so reads, ranges, multipart, copies and checksums need nothing of their own.
 */
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { KmsError, type Kms } from '../kms/kms.ts';
import { kmsOf } from '../kms/registry.ts';
import { bucketEncryptionOf } from '../sse-kms/bucket-encryption.ts';
import { encryptionContext, formatKmsMeta, KMS_META, kmsS3Error, parseKmsMeta, parseManagedRequest, type ManagedKey } from '../sse-kms/managed.ts';
import { parseCustomerKey, type CustomerKey, type Headers } from '../sse-c/customer-key.ts';
import type { ParsedUploadId } from '../sse-c/upload-id.ts';
import type { RequestContext } from '../context.ts';
import type { StoredObject } from './stored.ts';

/** A KMS call that takes longer is S3's retryable 503: a stuck KMS never holds a request forever. */
const KMS_TIMEOUT_MS = 10_000;

/** The configured KMS; none, or one that cannot be loaded (its keys file gone since the start), is S3's 503. */
function kmsFor(ctx: Pick<RequestContext, 'config'>): Kms {
  let kms: Kms | undefined;
  try {
    kms = kmsOf(ctx.config);
  } catch (cause) {
    throw kmsS3Error(new KmsError('Unavailable', 'the KMS could not be loaded', { cause }));
  }
  if (!kms) throw kmsS3Error(new KmsError('Unavailable', 'no KMS is configured'));
  return kms;
}

/** `call` with KMS failures as S3's answers (unexpected ones and timeouts as the retryable 503). */
async function asking<T>(call: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new KmsError('Unavailable', 'the KMS did not answer in time')), KMS_TIMEOUT_MS);
  });
  try {
    return await Promise.race([call(), late]);
  } catch (e) {
    throw kmsS3Error(e instanceof KmsError ? e : new KmsError('Unavailable', 'the KMS failed', { cause: e }));
  } finally {
    clearTimeout(timer);
  }
}

/** A new external key for `bucket/key` under `k`, and the metadata entry that stores it sealed. */
export async function newManagedKey(ctx: Pick<RequestContext, 'config'>, k: ManagedKey, bucket: string, key: string): Promise<{ customerKey: CustomerKey; meta: Record<string, string> }> {
  const kms = kmsFor(ctx);
  const generated = await asking(() => kms.generateKey(k.keyId, encryptionContext(k, bucket, key)));
  return {
    customerKey: { key: generated.plaintext, keyMd5: `managed:${k.mode}:${k.keyId}`, managed: k },
    meta: { [KMS_META]: formatKmsMeta(k, generated.sealed) },
  };
}

/** The external key of a stored object from its KMS_META entry, unwrapped (cached) for `bucket/key`. */
async function storedManagedKey(ctx: Pick<RequestContext, 'config'>, meta: string, bucket: string, key: string): Promise<CustomerKey> {
  const { key: k, sealed } = parseKmsMeta(meta);
  const kms = kmsFor(ctx);
  const plaintext = await asking(() => kms.decrypt(k.keyId, sealed, encryptionContext(k, bucket, key)));
  return { key: plaintext, keyMd5: `managed:${k.mode}:${k.keyId}`, managed: k };
}

/** The metadata entry for an object written under `key` (empty for SSE-C and plain objects). */
export type WriteKey = { customerKey: CustomerKey; meta: Record<string, string> } | undefined;

/** What a write will be: SSE-C under the client's key, SSE-S3/KMS, or (undefined) plaintext. */
export type WritePlan = { readonly customerKey: CustomerKey } | { readonly managed: ManagedKey } | undefined;

/**
 * What a write to `bucket` asks for (`headers` are the request's or a form's fields): the client's SSE-C key,
 * the SSE-S3/KMS it names, or the bucket's default; refused (403, as S3 refuses blocked encryption types) when
 * the bucket's policy forbids it. Synchronous: checked before a body is read.
 */
export function planWrite(ctx: Pick<RequestContext, 'config'>, headers: Headers, bucket: string): WritePlan {
  const customerKey = parseCustomerKey(headers, 'write');
  if (customerKey) return { customerKey };
  const policy = bucketEncryptionOf(ctx.config.bucketEncryption, bucket);
  const asked = parseManagedRequest(headers, ctx.config.kms ? kmsFor(ctx).defaultKeyId : undefined);
  if (policy.kind === 'require-sse-c' || (policy.kind === 'require-encryption' && !asked)) {
    throw new S3Error('AccessDenied', `Access Denied: the bucket's encryption policy requires ${policy.kind === 'require-sse-c' ? 'SSE-C' : 'server-side encryption'}.`);
  }
  if (asked) return { managed: asked };
  if (policy.kind === 'sse-s3') return { managed: { mode: 'AES256', keyId: kmsFor(ctx).defaultKeyId } };
  if (policy.kind === 'sse-kms') return { managed: { mode: 'aws:kms', keyId: policy.keyId } };
  return undefined;
}

/** The key (and KMS metadata entry) of a planned write of `bucket/key`; a new external key for SSE-S3/KMS. */
export async function keyForWrite(ctx: Pick<RequestContext, 'config'>, plan: WritePlan, bucket: string, key: string): Promise<WriteKey> {
  if (!plan) return undefined;
  if ('customerKey' in plan) return { customerKey: plan.customerKey, meta: {} };
  return newManagedKey(ctx, plan.managed, bucket, key);
}

/** planWrite then keyForWrite. */
export async function writeKeyOf(ctx: Pick<RequestContext, 'config'>, headers: Headers, bucket: string, key: string): Promise<WriteKey> {
  return keyForWrite(ctx, planWrite(ctx, headers, bucket), bucket, key);
}

/**
 * The key a read of `stored` opens it with: for an SSE-S3/KMS object the KMS's (and SSE-C headers are S3's
 * 400), else the client's SSE-C key as given (objects/open.ts checks it).
 */
export async function readKeyOf(ctx: Pick<RequestContext, 'config'>, stored: Pick<StoredObject, 'bucket' | 'key' | 'headers'>, given: CustomerKey | undefined): Promise<CustomerKey | undefined> {
  const meta = stored.headers[KMS_META];
  if (typeof meta !== 'string') return given;
  if (given) throw new S3Error('InvalidRequest', SSEC_MESSAGES.notApplicable);
  return storedManagedKey(ctx, meta, stored.bucket, stored.key);
}

/** True when the stored object is SSE-S3/KMS (its key comes from the KMS, not the client). */
export function isManaged(stored: Pick<StoredObject, 'headers'>): boolean {
  return typeof stored.headers[KMS_META] === 'string';
}

/** An SSE-S3/KMS multipart upload's external key, from the sealed key its upload id carries. */
export async function uploadKeyOf(ctx: Pick<RequestContext, 'config'>, parsed: ParsedUploadId, bucket: string, key: string): Promise<CustomerKey | undefined> {
  return parsed.kms === undefined ? undefined : storedManagedKey(ctx, parsed.kms, bucket, key);
}
