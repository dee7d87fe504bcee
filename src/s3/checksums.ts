/**
 * The flexible checksums S3 accepts (x-amz-checksum-*), computed over the plaintext. CRC32, SHA-1 and SHA-256
 * come with Node; CRC32C and CRC64NVME from the AWS SDK's own maintained implementations.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { Crc32c } from '@aws-crypto/crc32c';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from './errors.ts';

export type ChecksumName = 'crc32' | 'crc32c' | 'crc64nvme' | 'sha1' | 'sha256';

export interface Checksum {
  update(data: Buffer): void;
  /** base64 of the big-endian checksum, as S3 writes it. */
  digest(): Promise<string>;
}

function u32(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b.toString('base64');
}

export function createChecksum(name: ChecksumName): Checksum {
  switch (name) {
    case 'crc32': {
      let v = 0;
      return { update: (d) => void (v = crc32(d, v)), digest: async () => u32(v) };
    }
    case 'crc32c': {
      const c = new Crc32c();
      return { update: (d) => void c.update(d), digest: async () => u32(c.digest()) };
    }
    case 'crc64nvme': {
      const c = new Crc64Nvme();
      return { update: (d) => c.update(d), digest: async () => Buffer.from(await c.digest()).toString('base64') };
    }
    case 'sha1':
    case 'sha256': {
      const h = createHash(name);
      return { update: (d) => void h.update(d), digest: async () => h.digest('base64') };
    }
  }
}

/**
 * Index-encoded in stored data (sealed checksums, upload ids, part ETags): changing the order breaks stored
 * objects; only append. Pinned equal to format/tail.ts TAIL_ALGORITHMS by test/unit/checksum-lists.test.ts.
 */
export const CHECKSUM_NAMES: readonly ChecksumName[] = ['crc32', 'crc32c', 'crc64nvme', 'sha1', 'sha256'];

/** `x-amz-checksum-crc32` → 'crc32'. */
export function checksumOfHeader(header: string): ChecksumName | undefined {
  const m = /^x-amz-checksum-(crc32|crc32c|crc64nvme|sha1|sha256)$/.exec(header.toLowerCase());
  return m ? (m[1] as ChecksumName) : undefined;
}

/**
 * The flexible checksum a request declares for its body: its value when known before the body (a header, or
 * the query of a presigned URL), or only its name when it comes as an aws-chunked trailer.
 */
export function declaredChecksum(
  headers: Record<string, string | string[] | undefined>,
  query: ReadonlyArray<readonly [string, string]>,
): { algorithm: ChecksumName; value?: string; trailer?: string } | undefined {
  for (const [name, value] of Object.entries(headers)) {
    const algorithm = checksumOfHeader(name);
    if (algorithm && typeof value === 'string') return { algorithm, value };
  }
  for (const [name, value] of query) {
    const algorithm = checksumOfHeader(name);
    if (algorithm) return { algorithm, value };
  }
  const trailer = String(headers['x-amz-trailer'] ?? '')
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .find((t) => checksumOfHeader(t));
  return trailer ? { algorithm: checksumOfHeader(trailer)!, trailer } : undefined;
}

const DISPLAY: Record<ChecksumName, string> = {
  crc32: 'CRC32',
  crc32c: 'CRC32C',
  crc64nvme: 'CRC64NVME',
  sha1: 'SHA1',
  sha256: 'SHA256',
};

/** Passes bytes through, computing `name`; at the end `onEnd(digest)` may fail the stream (before later stages end). */
function digesting(name: ChecksumName, onEnd: (actual: string) => Error | undefined): Transform {
  const sum = createChecksum(name);
  return new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      sum.update(chunk);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      sum.digest().then((actual) => cb(onEnd(actual)), cb);
    },
  });
}

/**
 * Passes bytes through and, at the end, compares the checksum with `expected()` (a header value, or a trailer
 * known only once the body is complete). A mismatch fails the stream before a later stage can finish.
 */
export function createChecksumCheck(name: ChecksumName, expected: () => string | undefined): Transform {
  return digesting(name, (actual) => {
    const want = expected();
    if (want === undefined || want === actual) return undefined;
    return new S3Error('BadDigest', `The ${DISPLAY[name]} you specified did not match the calculated checksum.`);
  });
}

/**
 * Passes bytes through and computes `name` over them (a multipart upload's declared algorithm, for parts that
 * did not send it). At the end, a checksum the client gave of another algorithm is S3's type mismatch.
 */
export function createChecksumCompute(name: ChecksumName, given: () => Record<string, string>, sink: (base64: string) => void): Transform {
  return digesting(name, (actual) => {
    const other = Object.keys(given())
      .map((h) => checksumOfHeader(h))
      .find((a) => a !== undefined && a !== name);
    if (other) return new S3Error('InvalidRequest', `Checksum Type mismatch occurred, expected checksum Type: ${name}, actual checksum Type: ${other}`);
    sink(actual);
    return undefined;
  });
}

/** S3's COMPOSITE checksum of a multipart object: the algorithm over the parts' raw digests, then `-N`. */
export async function compositeChecksum(name: ChecksumName, digests: readonly Buffer[]): Promise<string> {
  const sum = createChecksum(name);
  sum.update(Buffer.concat(digests));
  return `${await sum.digest()}-${digests.length}`;
}

/** Reflected polynomials and widths of the CRCs S3 offers as FULL_OBJECT checksums. */
const CRC_PARAMS: Partial<Record<ChecksumName, { poly: bigint; width: number }>> = {
  crc32: { poly: 0xedb88320n, width: 32 },
  crc32c: { poly: 0x82f63b78n, width: 32 },
  crc64nvme: { poly: 0x9a6c9329ac4bc9b5n, width: 64 },
};

function gf2Times(mat: readonly bigint[], vec: bigint): bigint {
  let sum = 0n;
  for (let i = 0; vec !== 0n; i++, vec >>= 1n) if (vec & 1n) sum ^= mat[i]!;
  return sum;
}

function gf2Square(mat: readonly bigint[]): bigint[] {
  return mat.map((row) => gf2Times(mat, row));
}

/** Per CRC: the GF(2) operators that append 2^k zero bytes to a CRC, k = 0..52 (sizes below 2^53), built once. */
const zeroByteOps = new Map<ChecksumName, bigint[][]>();

function zeroOps(name: ChecksumName, p: { poly: bigint; width: number }): bigint[][] {
  let ops = zeroByteOps.get(name);
  if (!ops) {
    let op: bigint[] = [p.poly]; // one zero bit
    for (let n = 1, row = 1n; n < p.width; n++, row <<= 1n) op.push(row);
    for (let i = 0; i < 3; i++) op = gf2Square(op); // one zero byte
    ops = [op];
    for (let k = 1; k <= 52; k++) ops.push(gf2Square(ops[k - 1]!));
    zeroByteOps.set(name, ops);
  }
  return ops;
}

/**
 * S3's FULL_OBJECT checksum of a multipart object: the CRC of the whole plaintext, from the parts' CRCs and
 * sizes (zlib's crc32_combine, in GF(2), for any reflected CRC with all-ones init and xor-out).
 */
export function combineCrcs(name: ChecksumName, parts: ReadonlyArray<{ digest: Buffer; length: number }>): string {
  const p = CRC_PARAMS[name];
  if (!p) throw new RangeError(`${name} is not a CRC`);
  const ops = zeroOps(name, p);
  const bytes = p.width / 8;
  let crc: bigint | undefined;
  for (const part of parts) {
    const next = BigInt(`0x${part.digest.toString('hex')}`);
    if (crc === undefined) {
      crc = next;
      continue;
    }
    // crc(A ‖ B) = crc(A) shifted through len(B) zero bytes, xor crc(B).
    let acc = crc;
    for (let k = 0, len = part.length; len > 0; k++, len = Math.floor(len / 2)) if (len % 2 === 1) acc = gf2Times(ops[k]!, acc);
    crc = acc ^ next;
  }
  const out = Buffer.alloc(bytes);
  let v = crc ?? 0n;
  for (let i = bytes - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out.toString('base64');
}
