/**
 * Errors of the encrypted-object format. They know nothing of HTTP: the edge maps `code` to an S3 error.
 * Codes are stable (tests, vectors and logs depend on them). Programmer errors (bad arguments) are plain
 * TypeError/RangeError instead, so they surface as 500s rather than as "corrupt data".
 */

export type FormatErrorCode =
  /** Envelope string is not 112 base64url characters. */
  | 'EnvelopeMalformed'
  /** Envelope version, algorithm, flags or chunk size not supported by this reader. */
  | 'UnsupportedVersion'
  /** Envelope GCM tag did not verify: wrong customer key, other bucket/key name, or edited envelope. */
  | 'EnvelopeUnsealFailed'
  /** A chunk's GCM tag did not verify (bit flip, reordering, splice from another object, forged header). */
  | 'ChunkAuthFailed'
  /** A chunk header has an unknown version or reserved flag bits set. */
  | 'HeaderInvalid'
  /**
   * An authentic chunk of this object in the wrong place: another stream or part, another chunk index, part
   * numbers not increasing, or a part starting before the previous part's final chunk.
   */
  | 'StreamMismatch'
  /** Input ended before the expected final chunk or the expected number of chunks. */
  | 'Truncated'
  /** Bytes after the final chunk, after the expected number of chunks, or after the last segment. */
  | 'TrailingData'
  /** A size that no plaintext maps to. */
  | 'InvalidCiphertextSize'
  /** No well-formed tail record where the layout needs one (§5.6). */
  | 'TailInvalid'
  /** A tail record's GCM tag did not verify (edited size or checksum, or another object's record). */
  | 'TailAuthFailed';

export const FORMAT_ERROR_CODES: readonly FormatErrorCode[] = Object.freeze([
  'EnvelopeMalformed',
  'UnsupportedVersion',
  'EnvelopeUnsealFailed',
  'ChunkAuthFailed',
  'HeaderInvalid',
  'StreamMismatch',
  'Truncated',
  'TrailingData',
  'InvalidCiphertextSize',
  'TailInvalid',
  'TailAuthFailed',
]);

export interface FormatErrorOptions {
  cause?: unknown;
  /** Index of the offending chunk within its stream, when there is one. */
  chunkIndex?: number;
}

export class FormatError extends Error {
  override readonly name = 'FormatError';
  readonly code: FormatErrorCode;
  readonly chunkIndex: number | undefined;

  constructor(code: FormatErrorCode, message: string, options: FormatErrorOptions = {}) {
    super(`${code}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.chunkIndex = options.chunkIndex;
  }
}

export function isFormatError(err: unknown, code?: FormatErrorCode): err is FormatError {
  return err instanceof FormatError && (code === undefined || err.code === code);
}
