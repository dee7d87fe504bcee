/**
 * Per-credential bucket allow-lists (`"buckets": ["team-a-*"]`): a limited credential may touch only the
 * buckets that match, whatever the request (copy sources included), however it was authenticated.
 */
import { S3Error } from './errors.ts';

/** `logs-*` → /^logs-.*$/ (only `*` is special). */
function globToRegExp(glob: string): RegExp {
  const escaped = glob.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}

/** Whether `bucket` is inside `allowed` (undefined: no limit). */
export function isAllowed(allowed: readonly string[] | undefined, bucket: string): boolean {
  return !allowed || allowed.some((glob) => globToRegExp(glob).test(bucket));
}

/** Throws S3's AccessDenied when a bucket is outside `allowed` (undefined: no limit). */
export function refuseOutsideAllowList(allowed: readonly string[] | undefined, buckets: ReadonlyArray<string | undefined>): void {
  if (!allowed) return;
  const patterns = allowed.map(globToRegExp);
  for (const b of buckets) {
    if (b !== undefined && !patterns.some((p) => p.test(b))) throw new S3Error('AccessDenied', 'Access Denied');
  }
}
