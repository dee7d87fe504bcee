/**
 * aws-chunked bodies (`Content-Encoding: aws-chunked`), decoded to the plaintext they carry:
 *
 *   <hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n[<trailers>\r\n]\r\n
 *
 * Modes (x-amz-content-sha256): STREAMING-UNSIGNED-PAYLOAD-TRAILER (no chunk signatures, a checksum trailer),
 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD (every chunk signed, chained from the seed signature) and
 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER (the same plus a signed trailer). Chunk data streams on as it
 * arrives (holding a chunk until its signature verified would let one request buffer up to 2^48 bytes);
 * a bad chunk signature fails the stream at the chunk's end and trailers are checked before the stream
 * ends, so the last stage of an upload (the encryptor, or a hold-back) never completes an upload whose
 * framing, signatures or checksums are wrong.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from '../s3/errors.ts';
import { EMPTY_SHA256, hmacSha256, sha256Hex } from './canonical.ts';

export type StreamingMode =
  | 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'
  | 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'
  | 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';

export interface AwsChunkedOptions {
  mode: StreamingMode;
  /** Names from `x-amz-trailer` (lower-case); only these may appear in the trailer. */
  declaredTrailers: string[];
  /** For signed modes: the signing key, the seed signature, the request's amz date and scope. */
  signing?: { key: Buffer; seedSignature: string; amzDate: string; scope: string };
  /** Called with the verified trailers (name → value) once the body is complete. */
  onTrailers?: (trailers: Map<string, string>) => void;
}

const MAX_LINE = 4096;
const MAX_TRAILER_LINES = 16;
const CRLF = Buffer.from('\r\n');

function malformed(detail: string): S3Error {
  return new S3Error('IncompleteBody', `The aws-chunked request body is malformed: ${detail}.`);
}

function signatureMismatch(): S3Error {
  return new S3Error(
    'SignatureDoesNotMatch',
    'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  );
}

type State = 'header' | 'data' | 'data-crlf' | 'trailer' | 'end-crlf' | 'done';

export function createAwsChunkedDecoder(opts: AwsChunkedOptions): Transform {
  const signed = opts.mode !== 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
  const withTrailer = opts.mode !== 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
  if (signed && !opts.signing) throw new Error('signed aws-chunked needs signing material');
  let previousSignature = opts.signing?.seedSignature ?? '';
  let state: State = 'header';
  let pending = Buffer.alloc(0); // bytes of an incomplete line
  let remaining = 0; // bytes left in the current chunk's data
  let chunkSignature = '';
  let chunkHash: ReturnType<typeof createHash> | undefined;
  const trailerLines: string[] = [];
  const trailers = new Map<string, string>();

  const verifyChunk = (): void => {
    if (!signed) return;
    const s = opts.signing!;
    const stringToSign = [
      'AWS4-HMAC-SHA256-PAYLOAD',
      s.amzDate,
      s.scope,
      previousSignature,
      EMPTY_SHA256,
      chunkHash!.digest('hex'),
    ].join('\n');
    const expected = hmacSha256(s.key, stringToSign).toString('hex');
    if (!/^[0-9a-f]{64}$/.test(chunkSignature) || !timingSafeEqual(Buffer.from(expected), Buffer.from(chunkSignature))) {
      throw signatureMismatch();
    }
    previousSignature = expected;
  };

  const headerLine = (line: string): void => {
    const [sizeText, ...exts] = line.split(';');
    if (!sizeText || !/^[0-9a-fA-F]{1,12}$/.test(sizeText)) throw malformed('bad chunk size');
    remaining = parseInt(sizeText, 16);
    chunkSignature = '';
    for (const ext of exts) {
      const [k, v] = ext.split('=');
      if (k?.trim() === 'chunk-signature' && v !== undefined) chunkSignature = v.trim();
    }
    if (signed && !chunkSignature) throw malformed('missing chunk-signature');
    chunkHash = signed ? createHash('sha256') : undefined;
    if (remaining === 0) {
      verifyChunk();
      state = withTrailer ? 'trailer' : 'end-crlf';
    } else state = 'data';
  };

  const finishTrailers = (): void => {
    let signatureLine: string | undefined;
    const canonical: string[] = [];
    for (const line of trailerLines) {
      const i = line.indexOf(':');
      if (i <= 0) throw malformed('bad trailer');
      const name = line.slice(0, i).trim().toLowerCase();
      const value = line.slice(i + 1).trim();
      if (name === 'x-amz-trailer-signature') {
        signatureLine = value;
        continue;
      }
      if (!opts.declaredTrailers.includes(name)) throw malformed(`undeclared trailer ${name}`);
      trailers.set(name, value);
      canonical.push(`${name}:${value}\n`);
    }
    if (opts.mode === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER') {
      const s = opts.signing!;
      const stringToSign = ['AWS4-HMAC-SHA256-TRAILER', s.amzDate, s.scope, previousSignature, sha256Hex(canonical.join(''))].join('\n');
      const expected = hmacSha256(s.key, stringToSign).toString('hex');
      if (!signatureLine || !/^[0-9a-f]{64}$/.test(signatureLine) || !timingSafeEqual(Buffer.from(expected), Buffer.from(signatureLine))) {
        throw signatureMismatch();
      }
    }
    for (const name of opts.declaredTrailers) {
      if (!trailers.has(name)) throw malformed(`declared trailer ${name} missing`);
    }
  };

  function feed(stream: Transform, data: Buffer): void {
    let pos = 0;
    while (pos < data.length) {
      if (state === 'data') {
        const n = Math.min(remaining, data.length - pos);
        const piece = data.subarray(pos, pos + n);
        pos += n;
        remaining -= n;
        if (signed) chunkHash!.update(piece);
        stream.push(piece);
        if (remaining === 0) state = 'data-crlf';
        continue;
      }
      if (state === 'done') throw malformed('data after the end of the body');
      // Line-oriented states: collect up to CRLF (which may be split across writes).
      const joined = pending.length ? Buffer.concat([pending, data.subarray(pos)]) : data.subarray(pos);
      const nl = joined.indexOf(CRLF);
      if (nl < 0) {
        if (joined.length > MAX_LINE) throw malformed('line too long');
        pending = Buffer.from(joined);
        return;
      }
      if (nl > MAX_LINE) throw malformed('line too long');
      const line = joined.subarray(0, nl).toString('latin1');
      pos += nl + 2 - pending.length;
      pending = Buffer.alloc(0);
      switch (state) {
        case 'data-crlf':
          if (line !== '') throw malformed('chunk data longer than its declared size');
          verifyChunk();
          state = 'header';
          break;
        case 'header':
          headerLine(line);
          break;
        case 'trailer':
          if (line === '') {
            finishTrailers();
            state = 'done';
          } else {
            if (trailerLines.length >= MAX_TRAILER_LINES) throw malformed('too many trailer lines');
            trailerLines.push(line);
          }
          break;
        case 'end-crlf':
          if (line !== '') throw malformed('data after the final chunk');
          state = 'done';
          break;
      }
    }
  }

  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        feed(this, chunk);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb: TransformCallback) {
      // Lenient where clients are: a body may end right after the final chunk line.
      if (state === 'end-crlf' && pending.length === 0) state = 'done';
      if (state !== 'done') {
        return cb(new S3Error('IncompleteBody', 'The request body ended before the final aws-chunked chunk.'));
      }
      try {
        opts.onTrailers?.(trailers);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
}
