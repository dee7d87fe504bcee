/**
 * Writing a stored object: the one builder of a stream's sealing stages and the one streamed upstream PUT,
 * for every writer (PutObject, UploadPart, UploadPartCopy, CopyObject re-encryption, PostObject). Any failure
 * of the body (bad digest, short body, client gone, a source that fails to decrypt) destroys the upstream
 * request before its last bytes are sent, so the store never completes a partial object and the previous
 * version stays.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { encryptedSize } from '../format/layout.ts';
import { createEncryptStream } from '../format/stream.ts';
import { sealTail, TAIL_SIZE } from '../format/tail.ts';
import { checksumOfHeader, createChecksumCompute, type ChecksumName } from '../s3/checksums.ts';
import { requestTimeout, S3Error } from '../s3/errors.ts';
import { forwardableRequestHeaders, PLAINTEXT_DESCRIBING } from '../s3/headers.ts';
import { wipe } from '../sse-c/data-key.ts';
import type { UpstreamIdentity } from '../upstream.ts';
import { plainBody } from '../sigv4/body.ts';
import { objectPath } from '../s3/operation.ts';
import { chain, readWhole } from './chain.ts';
import { acceptBody, ClientGone, isClientAbort, upstreamRequest, type ObjectContext, type RequestContext } from '../context.ts';
import type { OwnedResponse } from '../upstream.ts';

/** Headers for an upstream write of ciphertext: the client's, minus what describes the plaintext. */
export function encryptedWriteHeaders(clientHeaders: IncomingHttpHeaders): Record<string, string> {
  const headers = forwardableRequestHeaders(clientHeaders);
  for (const h of PLAINTEXT_DESCRIBING) delete headers[h];
  for (const h of Object.keys(headers)) if (h.startsWith('x-amz-checksum-')) delete headers[h];
  const ce = headers['content-encoding'];
  if (ce !== undefined) {
    // aws-chunked is transfer framing, never the object's encoding.
    const rest = ce
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s && s.toLowerCase() !== 'aws-chunked');
    if (rest.length) headers['content-encoding'] = rest.join(', ');
    else delete headers['content-encoding'];
  }
  return headers;
}

/** How one stream is sealed. */
export interface Sealing {
  readonly dataKey: Buffer;
  readonly chunkSize: number;
  /** 0 for a single PUT, the S3 part number for a part. */
  readonly partNumber: number;
  /** End the stream with a tail record (FORMAT.md §5.6). */
  readonly tail?: boolean | undefined;
  /** The upload's declared checksum algorithm: computed when the client does not send it. */
  readonly compute?: ChecksumName | undefined;
}

/**
 * Passes bytes through and adds `last()` when the stream ends (after every earlier stage ended cleanly);
 * `close()` runs once the stage is done either way (a failed upload too).
 */
function appendAtEnd(last: () => Buffer, close: () => void): Transform {
  return new Transform({
    transform: (chunk: Buffer, _enc, cb: TransformCallback) => cb(null, chunk),
    flush(cb: TransformCallback) {
      try {
        cb(null, last());
      } catch (e) {
        cb(e as Error);
      }
    },
    destroy(err, cb) {
      close();
      cb(err);
    },
  });
}

/**
 * The stages that turn verified plaintext into what is stored for one stream: the upload's checksum computed
 * (when it declared one), the encryptor, and the tail record with the stream's size and checksum (the one the
 * client gave, verified, or the computed one). The record is made at the end, once every earlier check passed;
 * it keeps its own copy of the data key, wiped once used.
 */
export function sealingStages(
  o: Sealing & {
    plainSize: number;
    /** The client's verified checksums (complete once the body has ended). */
    given: () => Record<string, string>;
  },
): { stages: Transform[]; checksums: () => Record<string, string>; cipherSize: number } {
  const computed: Record<string, string> = {};
  const checksums = () => ({ ...computed, ...o.given() });
  const stages: Transform[] = [];
  const alg = o.compute;
  if (alg) stages.push(createChecksumCompute(alg, o.given, (v) => (computed[`x-amz-checksum-${alg}`] = v)));
  stages.push(createEncryptStream({ dataKey: o.dataKey, chunkSize: o.chunkSize, partNumber: o.partNumber, pieces: true }));
  if (o.tail) {
    const key = Buffer.from(o.dataKey);
    stages.push(
      appendAtEnd(
        () => {
          const [name, value] = Object.entries(checksums())[0] ?? [];
          const algorithm = name ? checksumOfHeader(name) : undefined;
          const digest = algorithm && value ? Buffer.from(value, 'base64') : undefined;
          return sealTail(key, { partNumber: o.partNumber, plainSize: o.plainSize, algorithm, digest });
        },
        () => wipe(key),
      ),
    );
  }
  return { stages, checksums, cipherSize: encryptedSize(o.plainSize, o.chunkSize) + (o.tail ? TAIL_SIZE : 0) };
}

/**
 * Holds back the last piece of a body until every earlier stage has ended cleanly: the upstream cannot
 * complete an upload whose checks (digest, checksum trailer, chunk signatures) fail at the very end. The
 * encryptor does this by itself; unencrypted uploads that the proxy checks end with this stage.
 */
export function holdBack(): Transform {
  let last: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      const previous = last;
      last = chunk;
      cb(null, previous);
    },
    flush(cb: TransformCallback) {
      cb(null, last);
    },
  });
}

/**
 * The body's failure, when it is the cause of the aborted upload: the proxy's own verdict on the bytes, or the
 * client leaving. A stream destroyed under the upload by the store's failure is not (undefined: use that).
 */
function verdict(failure: unknown): unknown {
  if (failure === undefined) return undefined;
  if (isClientAbort(failure)) return new ClientGone('the client closed the connection during the upload', { cause: failure });
  if ((failure as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') return undefined;
  return failure;
}

/** Uploads streaming now, in this process, and how many of them are anonymous. */
let uploading = 0;
let anonymousUploading = 0;

/** Upload slots in use in this process (a saturation metric). */
export function uploadsInUse(): number {
  return uploading;
}

/**
 * One of `maxConcurrentUploads` upload slots, released when its `using` scope ends; none left is S3's 503
 * SlowDown, answered before the body is read (clients retry with backoff). Anonymous uploads (which only the
 * store can refuse, once it has the body) get at most a quarter of the slots, so they never starve
 * authenticated ones.
 */
export function uploadSlot(ctx: RequestContext): Disposable {
  const anonymous = ctx.identity === undefined;
  const anonymousCap = Math.max(1, Math.floor(ctx.config.maxConcurrentUploads / 4));
  if (uploading >= ctx.config.maxConcurrentUploads || (anonymous && anonymousUploading >= anonymousCap)) {
    throw new S3Error('SlowDown', 'Please reduce your request rate.', { status: 503 });
  }
  uploading++;
  if (anonymous) anonymousUploading++;
  let released = false;
  return {
    [Symbol.dispose]: () => {
      if (!released) {
        uploading--;
        if (anonymous) anonymousUploading--;
      }
      released = true;
    },
  };
}

/** Uploads whose stored size is at most this are read whole before they are sent (see streamUpload). */
const WHOLE_BODY = 64 * 1024;

export interface UploadTarget {
  readonly path: string;
  readonly query: ReadonlyArray<readonly [string, string]>;
  /** Upstream headers (content-length is set here). */
  readonly headers: Record<string, string>;
  /** The exact number of bytes the stages produce. */
  readonly length: number;
}

/**
 * The one streamed upstream PUT (object or part): `source` through `stages` to the store. The body's own
 * failure is the one thrown (it is what aborted the upstream request). A 200 comes back with its body
 * released; any other answer comes back unread for the caller to relay, with the source stopped.
 */
export async function streamUpload(
  ctx: RequestContext,
  target: UploadTarget,
  source: Readable,
  stages: Transform[],
  /** PostObject writes as the identity of its form's credential. */
  identity?: UpstreamIdentity,
  /** An upload slot taken earlier (before answering 100-continue); else one is taken here. */
  slot?: Disposable,
): Promise<OwnedResponse> {
  let failure: unknown;
  const body: Readable = stages.length
    ? chain<Transform>(source, stages, (e) => {
        if (e) failure ??= e;
      })
    : source;
  source.on('error', (e) => (failure ??= e));
  const door = identity ? { ...ctx, identity } : ctx;
  using _slot = slot ?? uploadSlot(door);
  // A small body is checked and sealed whole before the upstream request starts: it then goes out with its
  // headers in one write instead of a streamed body's several.
  let payload: Readable | Buffer = body;
  if (stages.length && target.length <= WHOLE_BODY) {
    try {
      payload = await readWhole(body, target.length);
    } catch (e) {
      throw verdict(failure ?? e) ?? e;
    }
  }
  let up: OwnedResponse;
  try {
    up = await upstreamRequest(door, {
      method: 'PUT',
      path: target.path,
      query: target.query,
      headers: { ...target.headers, 'content-length': String(target.length) },
      body: payload,
    });
  } catch (e) {
    // The body's own failure (a check, the client leaving) is the cause; otherwise the store's (503).
    throw verdict(failure) ?? e;
  }
  if (failure) {
    await up[Symbol.asyncDispose]();
    throw verdict(failure) ?? failure;
  }
  if (up.statusCode !== 200) {
    // The upstream refused before reading everything (e.g. NoSuchBucket): stop reading the source too.
    body.destroy();
    return up;
  }
  await up[Symbol.asyncDispose]();
  return up;
}

/** The request's body written as the object (or part) the request names. */
export interface BodyWrite {
  /** Upstream headers (content-length is added here). */
  readonly headers: Record<string, string>;
  readonly query: Array<[string, string]>;
  /** Encrypt (see sealingStages); without it the body is forwarded as it is, its last bytes held back. */
  readonly seal?: Sealing | undefined;
}

/**
 * Streams the request's verified body (sealed, or as it is) to an upstream PUT of the object or part the
 * request names. Returns the upstream's answer (unread unless 200), the plaintext size and the checksums
 * verified (and computed) over the plaintext.
 */
export async function writeRequestBody(
  ctx: ObjectContext,
  w: BodyWrite,
): Promise<{ up: OwnedResponse; plainSize: number; checksums: () => Record<string, string> }> {
  const { req, res, s3 } = ctx;
  const body = plainBody(req, ctx.payloadHash, ctx.auth);
  // Either way the last stage keeps the final bytes until every check of the body has passed.
  const sealed = w.seal && sealingStages({ ...w.seal, plainSize: body.length, given: body.checksums });
  // Refused for lack of a slot before "100 Continue" asks the client for its body.
  const slot = uploadSlot(ctx);
  acceptBody(req, res);
  const stages = [...body.stages, ...(sealed ? sealed.stages : [holdBack()])];
  // A body silent for too long fails its first stage (and so the upload): no extra stage on the hot path.
  const idle = setTimeout(() => stages[0]!.destroy(requestTimeout()), ctx.config.bodyIdleMs).unref();
  req.on('data', (c: Buffer) => {
    ctx.stats.bytesIn += c.length;
    idle.refresh();
  });
  req.once('close', () => clearTimeout(idle));
  let up: OwnedResponse;
  try {
    up = await streamUpload(
      ctx,
      { path: objectPath(s3.bucket, s3.key), query: w.query, headers: w.headers, length: sealed ? sealed.cipherSize : body.length },
      req,
      stages,
      undefined,
      slot,
    );
  } finally {
    clearTimeout(idle);
  }
  // The upstream refused before reading everything: the rest of the body is not read either.
  if (up.statusCode !== 200 && !req.complete) res.shouldKeepAlive = false;
  return { up, plainSize: body.length, checksums: sealed ? sealed.checksums : body.checksums };
}
