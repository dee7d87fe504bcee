/**
 * The bucket's policy as this replica knows it: read from the store (the only place it lives), kept for a few
 * seconds per bucket (absent policies too), and enforced before a request's body is read or anything is
 * forwarded. Another replica's change is seen within POLICY_TTL_MS of its answer.
 */
import { S3Error } from '../s3/errors.ts';
import { objectPath } from '../s3/operation.ts';
import type { RequestContext } from '../context.ts';
import { dump, type Upstream, type UpstreamIdentity } from '../upstream.ts';
import { readStoredPolicy, type ProxyStatement } from './document.ts';
import { deniedBy } from './evaluate.ts';
import { POLICY_ACTIONS, policyChecks, type PolicyCheck } from './actions.ts';

/** How long a replica trusts what it read (a policy, or its absence). */
export const POLICY_TTL_MS = 5_000;
/** A stored policy larger than this is not one the proxy wrote (20 KB document + carrier); refused, not cut. */
const MAX_STORED = 1024 * 1024;
const MAX_ENTRIES = 10_000;

export type LoadedPolicy =
  /** No policy, or a store without bucket policies: nothing for the proxy to enforce. */
  | { readonly kind: 'none' }
  | { readonly kind: 'policy'; readonly statements: readonly ProxyStatement[] }
  /** The identity may not read the bucket's policy. */
  | { readonly kind: 'refused' }
  /** A carrier that does not decode: someone edited the stored policy by hand. */
  | { readonly kind: 'unreadable' };

/** Per-bucket entries for POLICY_TTL_MS; concurrent misses share one fetch; failures are not kept. */
export class PolicyCache {
  private readonly entries = new Map<string, { at: number; bucket: string; value: Promise<LoadedPolicy> }>();
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** The bucket's policy as `reader` (an access key id; undefined: the proxy's own identity) may read it. */
  get(bucket: string, reader: string | undefined, load: () => Promise<LoadedPolicy>): Promise<LoadedPolicy> {
    // A key that cannot collide, whatever the bucket name and access key hold.
    const key = JSON.stringify([bucket, reader ?? null]);
    const t = this.now();
    const hit = this.entries.get(key);
    if (hit && t - hit.at < POLICY_TTL_MS) return hit.value;
    if (this.entries.size >= MAX_ENTRIES) for (const [k, e] of this.entries) if (t - e.at >= POLICY_TTL_MS) this.entries.delete(k);
    // Still full (a burst of bucket names within one TTL): the oldest go, so the cache stays bounded.
    for (const k of this.entries.keys()) {
      if (this.entries.size < MAX_ENTRIES) break;
      this.entries.delete(k);
    }
    const value = load();
    this.entries.set(key, { at: t, bucket, value });
    value.catch(() => this.entries.get(key)?.value === value && this.entries.delete(key));
    return value;
  }

  /** After this replica changed the bucket's policy: its next request reads it again. */
  forget(bucket: string): void {
    for (const [k, e] of this.entries) if (e.bucket === bucket) this.entries.delete(k);
  }
}

const caches = new WeakMap<Upstream, PolicyCache>();

/** The replica's cache (one per upstream: a process serving one store has one). */
export function policyCache(upstream: Upstream): PolicyCache {
  let c = caches.get(upstream);
  if (!c) caches.set(upstream, (c = new PolicyCache()));
  return c;
}

const accessDenied = () => new S3Error('AccessDenied', 'Access Denied');

/**
 * Refuses the request (403 AccessDenied) when the SSE-C statements of a bucket it concerns deny it. Called once
 * per request after authentication and before its handler; policy operations are never refused here.
 */
export async function enforceBucketPolicy(ctx: RequestContext): Promise<void> {
  const anonymous = !identityOf(ctx);
  for (const check of policyChecks(ctx.req.method ?? 'GET', ctx.s3, ctx.req.headers)) {
    if (POLICY_ACTIONS.has(check.action)) continue;
    refuseIfDenied(await loadBucketPolicy(ctx, check.bucket), check, anonymous);
  }
}

/**
 * A PostObject's check, made once its fields are known (they come with the body): the bucket's policy is read
 * before the form, the returned function decides on the fields without waiting.
 */
export async function postObjectPolicy(ctx: RequestContext, bucket: string): Promise<(key: string, algorithm: string | undefined, anonymous: boolean) => void> {
  const loaded = await loadBucketPolicy(ctx, bucket);
  return (key, algorithm, anonymous) =>
    refuseIfDenied(loaded, { bucket, action: 's3:PutObject', resource: `arn:aws:s3:::${bucket}/${key}`, ssecAlgorithm: algorithm }, anonymous);
}

function refuseIfDenied(loaded: LoadedPolicy, check: PolicyCheck, anonymous: boolean): void {
  switch (loaded.kind) {
    case 'none':
      return;
    case 'refused':
      // Fail closed where SSE-C conditions act (writes); reads of a bucket the proxy cannot read the policy of
      // pass to the store, which enforces everything else.
      if (check.action === 's3:PutObject') throw accessDenied();
      return;
    case 'unreadable':
      throw accessDenied();
    case 'policy':
      if (deniedBy(loaded.statements, { ...check, anonymous })) throw accessDenied();
  }
}

/** The client's upstream identity; none for anonymous requests (PostObject before its form: none yet). */
function identityOf(ctx: RequestContext): UpstreamIdentity | undefined {
  const id = (ctx as { identity?: UpstreamIdentity }).identity;
  return id && id.accessKeyId !== '' ? id : undefined;
}

/**
 * Read with the proxy's own upstream identity (the same answer for every client, anonymous ones included), and
 * with the client's when that one may not: a client owning its bucket can always read its policy.
 */
export async function loadBucketPolicy(ctx: RequestContext, bucket: string): Promise<LoadedPolicy> {
  // The embedded development store has no bucket policies (it answers 405, which elsewhere means "not yours").
  if (ctx.config.noBucketPolicies) return { kind: 'none' };
  const cache = policyCache(ctx.upstream);
  const service = ctx.config.upstream ? { accessKeyId: ctx.config.upstream.accessKeyId, secretAccessKey: ctx.config.upstream.secretAccessKey } : undefined;
  const client = identityOf(ctx);
  const first = service ?? client;
  if (!first) return { kind: 'refused' };
  const loaded = await cache.get(bucket, service ? undefined : first.accessKeyId, () => fetchPolicy(ctx.upstream, bucket, first));
  if (loaded.kind !== 'refused' || !client || client.accessKeyId === first.accessKeyId) return loaded;
  return cache.get(bucket, client.accessKeyId, () => fetchPolicy(ctx.upstream, bucket, client));
}

async function fetchPolicy(upstream: Upstream, bucket: string, identity: UpstreamIdentity): Promise<LoadedPolicy> {
  // The replica's read, shared by every request that waits for it: not counted in any one request's log line.
  const up = await upstream.request({ identity, method: 'GET', path: objectPath(bucket), query: [['policy', '']] });
  const status = up.statusCode;
  if (status !== 200) {
    await dump(up);
    if (status === 404 || status === 400 || status === 501) return { kind: 'none' };
    if (status === 403 || status === 405) return { kind: 'refused' };
    throw new S3Error('ServiceUnavailable', 'The upstream store did not answer a bucket policy read. Please retry.');
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of up.body) {
    n += (c as Buffer).length;
    if (n > MAX_STORED) {
      up.body.destroy();
      return { kind: 'unreadable' };
    }
    chunks.push(c as Buffer);
  }
  try {
    const { statements } = readStoredPolicy(Buffer.concat(chunks).toString('utf8'));
    return statements.length > 0 ? { kind: 'policy', statements } : { kind: 'none' };
  } catch {
    return { kind: 'unreadable' };
  }
}
