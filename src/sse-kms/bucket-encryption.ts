/**
 * The per-bucket encryption policy of the configuration (SSEC_PROXY_BUCKET_ENCRYPTION): what a write that names
 * no encryption gets, and which writes are refused. The proxy is stateless, so this lives in its configuration,
 * not in the store (PutBucketEncryption is refused: every replica must agree without reading anything).
 */

export type BucketEncryptionPolicy =
  /** Writes naming no encryption are SSE-S3 (the KMS's default master key). */
  | { readonly kind: 'sse-s3' }
  /** Writes naming no encryption are SSE-KMS under this master key. */
  | { readonly kind: 'sse-kms'; readonly keyId: string }
  /** Only SSE-C writes are accepted. */
  | { readonly kind: 'require-sse-c' }
  /** Writes must name an encryption (SSE-C, SSE-S3 or SSE-KMS). */
  | { readonly kind: 'require-encryption' }
  | { readonly kind: 'none' };

export interface BucketEncryptionRule {
  /** A bucket name with `*` wildcards. */
  readonly pattern: string;
  readonly policy: BucketEncryptionPolicy;
}

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,255}$/;

function parsePolicy(text: string): BucketEncryptionPolicy {
  if (text === 'sse-s3' || text === 'require-sse-c' || text === 'require-encryption' || text === 'none') return { kind: text };
  if (text.startsWith('sse-kms:') && KEY_ID.test(text.slice(8))) return { kind: 'sse-kms', keyId: text.slice(8) };
  throw new Error(`"${text.slice(0, 64)}" is not one of sse-s3, sse-kms:<key id>, require-sse-c, require-encryption, none`);
}

/** `{"<bucket pattern>": "<policy>", …}` → rules, in the document's order. Throws on anything else. */
export function parseBucketEncryption(doc: unknown): BucketEncryptionRule[] {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('must be a JSON object {"<bucket pattern>": "<policy>", …}');
  return Object.entries(doc).map(([pattern, v]) => {
    if (typeof v !== 'string') throw new Error(`"${pattern.slice(0, 64)}": the policy must be a string`);
    if (!isBucketPattern(pattern)) throw new Error(`"${pattern.slice(0, 64)}" is not a bucket name pattern`);
    return { pattern, policy: parsePolicy(v) };
  });
}

/** A bucket name with `*` wildcards (the syntax of every per-bucket setting). */
export function isBucketPattern(pattern: string): boolean {
  return /^[a-z0-9.*-]{1,63}$/.test(pattern);
}

/** `bucket` matches `pattern` (`*`: any run of characters). */
export function bucketMatches(pattern: string, bucket: string): boolean {
  const parts = pattern.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`).test(bucket);
}

/** The policy of `bucket`: the first rule whose pattern matches, else none. */
export function bucketEncryptionOf(rules: readonly BucketEncryptionRule[] | undefined, bucket: string): BucketEncryptionPolicy {
  return rules?.find((r) => bucketMatches(r.pattern, bucket))?.policy ?? { kind: 'none' };
}
