/**
 * Replacing a stored object in place without losing what describes it or what a concurrent writer wrote:
 * the headers and user metadata it keeps, its tags, and writes conditional on the ETag the tool read.
 *
 * Conditional writes: a PUT carries `If-Match: <ETag read>`, so a writer that replaced the object since the
 * tool read it wins (412) and the tool leaves the object alone ("changed"). AWS S3 takes the quoted ETag; Ceph
 * RGW (16) takes If-Match on PUT only unquoted (a quoted one never matches), and in a versioned bucket not at
 * all. A 412 on an object whose ETag has not changed moves the run to the next form: bare, then none. Where
 * writes are not conditional (that last case, and RGW's CompleteMultipartUpload, which ignores If-Match), the
 * tool re-reads the ETag right before the write: that narrows the window to the one request but cannot close
 * it (docs/OPERATIONS.md).
 */
import { once } from 'node:events';
import type { RequestContext } from '../context.ts';
import { requestObject, type StoredObject } from '../objects/stored.ts';
import { S3Error, type S3ErrorCode } from '../s3/errors.ts';
import { RESERVED_META_PREFIX } from '../s3/headers.ts';
import { objectPath } from '../s3/operation.ts';
import { parseS3Error, parseTagging } from '../s3/xml.ts';
import { readText, type UpstreamResponse } from '../upstream.ts';
import { upstreamRequest } from '../context.ts';
import type { Progress } from './progress.ts';

/** The object changed (or went away) since the tool read it: left as its writer left it. */
export class ObjectChanged extends Error {
  override readonly name = 'ObjectChanged';
}

/** Object headers S3 keeps with an object (and a copy with COPY). */
const OBJECT_HEADERS = ['content-type', 'cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires', 'x-amz-website-redirect-location', 'x-amz-storage-class'];

/** The headers and user metadata (not the proxy's own entries) that a rewrite of `stored` keeps. */
export function keptHeaders(stored: Pick<StoredObject, 'headers'>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(stored.headers)) {
    const n = name.toLowerCase();
    if (typeof value !== 'string' || n.startsWith(RESERVED_META_PREFIX)) continue;
    if (n.startsWith('x-amz-meta-') || OBJECT_HEADERS.includes(n)) out[n] = value;
  }
  return out;
}

/** The object's tags (one GET ?tagging, only when the HEAD says it has some). */
export async function tagsOf(ctx: RequestContext, stored: StoredObject): Promise<Array<{ key: string; value: string }>> {
  if (Number(stored.headers['x-amz-tagging-count'] ?? 0) === 0) return [];
  await using up = await upstreamRequest(ctx, {
    method: 'GET',
    path: objectPath(stored.bucket, stored.key),
    query: [['tagging', ''], ...(stored.versionId ? ([['versionId', stored.versionId]] as Array<[string, string]>) : [])],
  });
  if (up.statusCode !== 200) throw await refusal(up, 'reading its tags');
  return parseTagging(await readText(up));
}

/** The object's tags as an `x-amz-tagging` header for its rewrite, or none. */
export async function taggingOf(ctx: RequestContext, stored: StoredObject): Promise<Record<string, string>> {
  const tags = (await tagsOf(ctx, stored)).map((t) => `${encodeURIComponent(t.key)}=${encodeURIComponent(t.value)}`);
  return tags.length ? { 'x-amz-tagging': tags.join('&') } : {};
}

/** An upstream refusal as an S3Error (code and message from its XML), for the object's failure line. */
export async function refusal(up: UpstreamResponse, doing: string): Promise<S3Error> {
  const text = await readText(up).catch(() => '');
  const { code, message } = parseS3Error(text);
  return new S3Error((code ?? 'InternalError') as S3ErrorCode, `${doing}: ${message || `HTTP ${up.statusCode}`}`, { status: up.statusCode });
}

/** The current ETag of the object (its newest version), or undefined when it is gone. */
export async function currentEtag(ctx: RequestContext, bucket: string, key: string): Promise<string | undefined> {
  await using up = await requestObject(ctx, { bucket, key }, 'HEAD');
  if (up.statusCode === 404) return undefined;
  if (up.statusCode !== 200) throw new S3Error('ServiceUnavailable', `HEAD answered HTTP ${up.statusCode}`, { status: up.statusCode });
  return String(up.headers['etag'] ?? '');
}

const bare = (etag: string) => etag.replace(/"/g, '');

/** Throws ObjectChanged unless the object's current ETag is still `etag`. */
export async function assertUnchanged(ctx: RequestContext, stored: StoredObject): Promise<void> {
  const now = await currentEtag(ctx, stored.bucket, stored.key);
  if (now === undefined || bare(now) !== bare(stored.etag)) throw new ObjectChanged('the object changed since it was read');
}

/**
 * How this run's writes are made conditional: If-Match quoted (AWS), bare (RGW on unversioned buckets), or not
 * at all where the store refuses If-Match with the very ETag it reports (RGW on versioned buckets): then
 * re-HEAD right before the write (`beforeWrite`).
 */
let form: 'quoted' | 'bare' | 'none' = 'quoted';

export function ifMatch(etag: string): Record<string, string> {
  if (form === 'none') return {};
  return { 'if-match': form === 'quoted' ? `"${bare(etag)}"` : bare(etag) };
}

/** Right before a replacement is sent: where writes cannot be conditional, the ETag is checked again here. */
export async function beforeWrite(ctx: RequestContext, stored: StoredObject): Promise<void> {
  if (form === 'none') await assertUnchanged(ctx, stored);
}

/**
 * A conditional write of `stored`'s replacement: `write()` sends it with ifMatch(); a 412 is ObjectChanged, or
 * (the ETag unchanged: the store refused the form) the write again in the next form.
 */
export async function conditionally<T>(ctx: RequestContext, stored: StoredObject, progress: Progress, write: () => Promise<{ status: number; result: T }>): Promise<T> {
  for (;;) {
    const tried = form;
    const { status, result } = await write();
    if (status !== 412 || tried === 'none') return result;
    await assertUnchanged(ctx, stored);
    if (form === tried) {
      form = tried === 'quoted' ? 'bare' : 'none';
      if (form === 'none') {
        progress.note(
          { warning: 'no-conditional-writes' },
          'warning: the store refuses If-Match with the ETags it reports; each object is checked with a HEAD right before it is replaced instead (a writer in between would be overwritten; in a versioned bucket its version is kept)',
        );
      }
    }
  }
}

const paused = new Set<string>();

/**
 * A test hook (SSEC_TOOLS_TEST_PAUSE_BEFORE_WRITE=<object key>): before replacing that object, say so and
 * wait for SIGUSR2 (once per object), so a test can write the object concurrently at exactly that moment.
 */
export async function pauseBeforeWrite(env: NodeJS.ProcessEnv, progress: Progress, key: string): Promise<void> {
  if (env.SSEC_TOOLS_TEST_PAUSE_BEFORE_WRITE !== key || paused.has(key)) return;
  paused.add(key);
  const resumed = once(process, 'SIGUSR2');
  // A signal listener does not keep the process alive: this timer does, until the signal comes.
  const alive = setInterval(() => {}, 1000);
  progress.note({ paused: key }, `paused before writing ${key} (SIGUSR2 resumes)`);
  try {
    await resumed;
  } finally {
    clearInterval(alive);
  }
}
