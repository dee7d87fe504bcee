/**
 * Body integrity checks that sit in the data path: bytes pass straight through, and the stream fails at its
 * end (in `flush`) when the digest differs from what the client declared. Downstream stages hold the final
 * chunk until end-of-stream, so failing at flush is enough to keep a mismatched body from being committed:
 * with `stream/promises.pipeline`, every other stage is destroyed with the error and the writable sees
 * 'error', never 'finish'.
 */

import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from '../s3/errors.ts';

export const PAYLOAD_MESSAGES = {
  sha256Mismatch: "The provided 'x-amz-content-sha256' header does not match what was computed.",
  badDigest: 'The Content-MD5 you specified did not match what we received.',
  invalidDigest: 'The Content-MD5 you specified was invalid.',
} as const;

class DigestCheck extends Transform {
  readonly #hash: Hash;
  readonly #check: (digest: Buffer) => S3Error | undefined;

  constructor(algorithm: 'sha256' | 'md5', check: (digest: Buffer) => S3Error | undefined) {
    super();
    this.#hash = createHash(algorithm);
    this.#check = check;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    cb(this.#check(this.#hash.digest()) ?? null);
  }
}

/**
 * Pass bytes through and fail at the end with XAmzContentSHA256Mismatch (400) unless their SHA-256 is
 * `expectedHex` (the signed `x-amz-content-sha256`, 64 hex digits).
 */
export function createSha256Check(expectedHex: string): Transform {
  const expected = expectedHex.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(expected)) throw new TypeError('createSha256Check: expected a hex SHA-256');
  return new DigestCheck('sha256', (digest) => {
    const computed = digest.toString('hex');
    if (computed === expected) return undefined;
    return new S3Error('XAmzContentSHA256Mismatch', PAYLOAD_MESSAGES.sha256Mismatch, {
      extra: { ClientComputedContentSHA256: expected, S3ComputedContentSHA256: computed },
    });
  });
}

/**
 * Decode a Content-MD5 header: base64 of exactly 16 bytes, or InvalidDigest (400) as S3 answers.
 */
export function parseContentMd5(value: string): Buffer {
  const v = value.trim();
  if (!/^[A-Za-z0-9+/]{22}==$/.test(v)) throw new S3Error('InvalidDigest', PAYLOAD_MESSAGES.invalidDigest);
  const bytes = Buffer.from(v, 'base64');
  if (bytes.length !== 16 || bytes.toString('base64') !== v) {
    throw new S3Error('InvalidDigest', PAYLOAD_MESSAGES.invalidDigest);
  }
  return bytes;
}

/**
 * Pass bytes through and fail at the end with BadDigest (400) unless their MD5 is `expected`: the Content-MD5
 * header value (base64; InvalidDigest is thrown at once when it is not base64 of 16 bytes) or the 16 bytes
 * `parseContentMd5` returned.
 */
export function createMd5Check(expected: string | Uint8Array): Transform {
  let md5: Buffer;
  if (typeof expected === 'string') md5 = parseContentMd5(expected);
  else if (expected.length === 16) md5 = Buffer.from(expected);
  else throw new TypeError('createMd5Check: expected 16 bytes');
  return new DigestCheck('md5', (digest) => {
    if (digest.equals(md5)) return undefined;
    return new S3Error('BadDigest', PAYLOAD_MESSAGES.badDigest, {
      extra: { ExpectedDigest: md5.toString('base64'), CalculatedDigest: digest.toString('base64') },
    });
  });
}
