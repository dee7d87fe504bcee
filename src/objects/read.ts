/**
 * Reading a stored encrypted object: from a plaintext range to the one upstream read of its ciphertext, and
 * from that ciphertext to verified plaintext. The strategy, in one place:
 *
 * - whole GET: one upstream GET; its body waits while the layout is learned (a multipart object's part table
 *   costs a few small reads the first time a replica sees it);
 * - warm ranged GET (this replica knows the object's newest version): exactly the chunks needed, pinned with
 *   If-Match to that version: one request; 412 (it changed since) → as cold;
 * - cold ranged GET, part read, HEAD: a HEAD first (envelope, size, ETag), then exactly the chunks needed,
 *   pinned to the ETag the HEAD saw. No request's body is ever thrown away.
 */
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { decryptStages, planRange, planWhole, type ObjectLayout, type RangePlan } from '../format/parts.ts';
import { S3Error } from '../s3/errors.ts';
import { objectPath } from '../s3/operation.ts';
import { resolveRange, type RangeSpec, type ResolvedRange } from '../s3/range.ts';
import type { CustomerKey } from '../sse-c/customer-key.ts';
import type { OwnedResponse } from '../upstream.ts';
import { upstreamRequest, type RequestContext } from '../context.ts';
import { chain } from './chain.ts';
import { layoutOfInfo } from './info-cache.ts';
import { readKeyOf } from './keys.ts';
import { layoutOf } from './layout.ts';
import { openObject, type OpenedObject } from './open.ts';
import { requestObject, storedObject, storedSpan, type ObjectName, type StoredHeaders, type StoredObject } from './stored.ts';

export interface ReadOptions {
  readonly name: ObjectName;
  /** The upstream query of the object's reads (the client's, less what the proxy answers itself). */
  readonly query: Array<[string, string]>;
  /** The client's conditionals and read options, forwarded with the first request. */
  readonly headers: Record<string, string>;
  /** The client's SSE-C key; undefined: the object's own (SSE-S3/KMS) from the KMS. */
  readonly customerKey: CustomerKey | undefined;
  readonly method: 'GET' | 'HEAD';
  /** A ranged GET's Range. */
  readonly range?: RangeSpec | undefined;
  /** The part table is needed (`?partNumber=N`). */
  readonly parts?: boolean;
}

/** The plaintext to send and the upstream headers that describe it. */
export interface PlaintextBody {
  readonly headers: StoredHeaders;
  readonly stream: Readable;
}

function isOk(up: OwnedResponse): boolean {
  return up.statusCode === 200 || up.statusCode === 206;
}

/** An opened object ready to be read; releases its key and any unread upstream body when disposed. */
export class ObjectRead implements AsyncDisposable {
  readonly #ctx: RequestContext;
  readonly #options: ReadOptions;
  /** A GET whose body is still unread (the whole object, or a warm range). */
  #pending: OwnedResponse | undefined;

  constructor(
    ctx: RequestContext,
    options: ReadOptions,
    readonly stored: StoredObject,
    readonly opened: OpenedObject,
    readonly layout: ObjectLayout,
    pending: OwnedResponse | undefined,
    /** The key it was opened with (the client's, or the KMS's for SSE-S3/KMS: `managed`). */
    readonly key: CustomerKey,
  ) {
    this.#ctx = ctx;
    this.#options = options;
    this.#pending = pending;
  }

  get plainSize(): number {
    return this.layout.plainSize;
  }

  /**
   * The verified plaintext of `selected` (inclusive; undefined: the whole object), from the GET already made
   * when it holds exactly those chunks, else from one GET of exactly them pinned to this version. An upstream
   * refusal (e.g. the object changed: 412) comes back as `relay`, before anything was sent to the client.
   */
  async body(selected: ResolvedRange | undefined): Promise<{ relay: OwnedResponse } | PlaintextBody> {
    const { dataKey, chunkSize } = this.opened;
    const plan: Pick<RangePlan, 'decrypt' | 'stripTails'> & Partial<RangePlan> = selected
      ? planRange(this.layout, selected.start, selected.end, chunkSize)
      : planWhole(this.layout);
    let up = this.#pending;
    this.#pending = undefined;
    let skip = 0;
    if (up && plan.cipherStart !== undefined) {
      const got = storedSpan(up.headers);
      if (up.statusCode === 206 && plan.cipherStart >= got.start && plan.cipherEndInclusive === got.end) skip = plan.cipherStart - got.start;
      else up = await release(up);
    } else if (up && up.statusCode !== 200) up = await release(up);
    if (!up) {
      const exact: Record<string, string> = this.stored.etag ? { 'if-match': this.stored.etag } : {};
      if (plan.cipherStart !== undefined) exact.range = `bytes=${plan.cipherStart}-${plan.cipherEndInclusive}`;
      up = await this.#get(exact);
      if (!isOk(up)) return { relay: up };
    }
    const stages: Transform[] = [];
    // A single PUT's checksum record after its last chunk is not read as a chunk.
    if (plan.cipherStart === undefined && this.stored.chunksSize !== this.stored.size) stages.push(takeFirst(this.stored.chunksSize));
    if (skip > 0) stages.push(dropPrefix(skip));
    stages.push(...decryptStages(plan, dataKey, chunkSize));
    return { headers: up.headers, stream: decrypting(this.#ctx, up, stages) };
  }

  #get(extra: Record<string, string>): Promise<OwnedResponse> {
    return getObject(this.#ctx, this.#options, extra);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.opened[Symbol.dispose]();
    if (this.#pending) await release(this.#pending);
  }
}

async function release(up: OwnedResponse): Promise<undefined> {
  await up[Symbol.asyncDispose]();
  return undefined;
}

function getObject(ctx: RequestContext, o: ReadOptions, extra: Record<string, string>, method: 'GET' | 'HEAD' = 'GET'): Promise<OwnedResponse> {
  return upstreamRequest(ctx, {
    method,
    path: objectPath(o.name.bucket, o.name.key),
    query: o.query,
    headers: { ...o.headers, ...extra },
  });
}

/**
 * Opens the object named in `o` for reading with the client's key (see the module comment for the requests
 * it makes). An upstream refusal (404, 304, 412...) comes back as `relay`.
 */
export async function openRead(ctx: RequestContext, o: ReadOptions): Promise<{ relay: OwnedResponse } | ObjectRead> {
  let first: OwnedResponse | undefined;
  if (o.method === 'GET' && o.range) {
    const warm = warmRange(ctx, o);
    if (warm) {
      const pin: Record<string, string> = o.headers['if-match'] === undefined ? { 'if-match': warm.etag } : {};
      first = await getObject(ctx, o, { range: warm.range, ...pin });
      // Changed since this replica saw it (412), or not what it remembers (416: shorter than its chunks): read it cold.
      if ((first.statusCode === 412 && 'if-match' in pin) || first.statusCode === 416) first = await release(first);
    }
  } else if (o.method === 'GET' && !o.parts) first = await getObject(ctx, o, {});
  const fromHead = first === undefined;
  first ??= await getObject(ctx, o, {}, 'HEAD');
  if (!(first.statusCode === 200 || (first.statusCode === 206 && !fromHead))) {
    if (!fromHead || o.method === 'HEAD' || first.statusCode === 304) return { relay: first };
    // A HEAD's refusal has no body: the same GET (of one byte) gives S3's XML error to relay.
    await release(first);
    const again = await getObject(ctx, o, { range: 'bytes=0-0' });
    if (again.statusCode !== 200 && again.statusCode !== 206) return { relay: again };
    await release(again);
    throw new S3Error('ServiceUnavailable', 'The object changed while it was read. Please retry.', { status: 503 });
  }
  const pending = fromHead ? await release(first) : first;
  try {
    const stored = storedObject(o.name, first.headers);
    const key = await readKeyOf(ctx, stored, o.customerKey);
    const opened = openObject(stored, key)!;
    try {
      const layout = await layoutOf(ctx, stored, { chunkSize: opened.chunkSize, dataKey: opened.dataKey, parts: o.parts === true });
      return new ObjectRead(ctx, o, stored, opened, layout, pending, key!);
    } catch (e) {
      opened[Symbol.dispose]();
      throw e;
    }
  } catch (e) {
    if (pending) await release(pending);
    throw e;
  }
}

/**
 * The exact ciphertext range for the client's Range of the newest version of this object that this replica
 * knows (and its ETag, to pin the read to it), when no conditional of the client's could disagree.
 */
function warmRange(ctx: RequestContext, o: ReadOptions): { range: string; etag: string } | undefined {
  const h = o.headers;
  if (o.name.versionId !== undefined || !o.range) return undefined;
  if (h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-unmodified-since'] !== undefined) return undefined;
  const known = ctx.objects.latest(o.name.bucket, o.name.key);
  if (!known?.info.encrypted || (h['if-match'] !== undefined && h['if-match'].replace(/"/g, '') !== known.etag.replace(/"/g, ''))) return undefined;
  const { info } = known;
  if (info.chunkSize === undefined || (info.tails && !info.verified)) return undefined;
  let resolved;
  try {
    resolved = resolveRange(o.range, info.size);
  } catch {
    return undefined; // unsatisfiable: the cold path answers S3's 416
  }
  const plan = planRange(layoutOfInfo(info), resolved.start, resolved.end, info.chunkSize);
  return { range: `bytes=${plan.cipherStart}-${plan.cipherEndInclusive}`, etag: known.etag };
}

/** The upstream body through `stages`, counted; any failure destroys the result (the client sees a cut). */
export function decrypting(ctx: RequestContext, up: OwnedResponse, stages: Transform[]): Readable {
  const out = chain<Transform>(up.body, stages.length ? stages : [new PassThrough()], () => {});
  // Counted by a listener added in the same tick as the chain (no chunk flows before both are in place),
  // not by one more stage on the hot path.
  up.body.on('data', (c: Buffer) => (ctx.stats.upstreamBytesIn += c.length));
  return out;
}

/**
 * The plaintext of `stored` (whole, or the inclusive range), streamed from one upstream GET of exactly that
 * version: a copy source. `opened` undefined: a plain object, read as it is.
 */
export async function readPlaintext(
  ctx: RequestContext,
  stored: StoredObject,
  opened: OpenedObject | undefined,
  layout: ObjectLayout | undefined,
  range: ResolvedRange | undefined,
  onRefusal: (status: number) => Error,
): Promise<Readable> {
  const headers: Record<string, string> = { 'if-match': stored.etag };
  let stages: Transform[] = [];
  if (opened && layout) {
    if (range) {
      const plan = planRange(layout, range.start, range.end, opened.chunkSize);
      headers.range = `bytes=${plan.cipherStart}-${plan.cipherEndInclusive}`;
      stages = decryptStages(plan, opened.dataKey, opened.chunkSize);
    } else {
      if (stored.chunksSize !== stored.size) headers.range = `bytes=0-${stored.chunksSize - 1}`;
      stages = decryptStages(planWhole(layout), opened.dataKey, opened.chunkSize);
    }
  } else if (range) {
    headers.range = `bytes=${range.start}-${range.end}`;
  }
  const up = await requestObject(ctx, stored, 'GET', headers);
  if (!isOk(up)) {
    await release(up);
    throw onRefusal(up.statusCode);
  }
  return decrypting(ctx, up, stages);
}

/** Drops the first `n` bytes of a stream (ciphertext fetched ahead of the first chunk we need). */
export function dropPrefix(n: number): Transform {
  let left = n;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      if (left === 0) return cb(null, chunk);
      if (chunk.length <= left) {
        left -= chunk.length;
        return cb();
      }
      const rest = chunk.subarray(left);
      left = 0;
      cb(null, rest);
    },
  });
}

/** Passes the first `n` bytes of a stream and drops the rest (a checksum record after the last chunk). */
export function takeFirst(n: number): Transform {
  let left = n;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      if (left >= chunk.length) {
        left -= chunk.length;
        return cb(null, chunk);
      }
      const head = chunk.subarray(0, left);
      left = 0;
      cb(null, head.length ? head : undefined);
    },
  });
}
