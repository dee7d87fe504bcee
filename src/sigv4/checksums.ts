/**
 * The flexible checksums S3 accepts (x-amz-checksum-*), computed over the plaintext. CRC32, SHA-1 and SHA-256
 * come with Node; CRC32C and CRC64NVME from the AWS SDK's own maintained implementations.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { Crc32c } from '@aws-crypto/crc32c';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from '../s3/errors.ts';

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

export const CHECKSUM_NAMES: readonly ChecksumName[] = ['crc32', 'crc32c', 'crc64nvme', 'sha1', 'sha256'];

/** `x-amz-checksum-crc32` → 'crc32'. */
export function checksumOfHeader(header: string): ChecksumName | undefined {
  const m = /^x-amz-checksum-(crc32|crc32c|crc64nvme|sha1|sha256)$/.exec(header.toLowerCase());
  return m ? (m[1] as ChecksumName) : undefined;
}

const DISPLAY: Record<ChecksumName, string> = {
  crc32: 'CRC32',
  crc32c: 'CRC32C',
  crc64nvme: 'CRC64NVME',
  sha1: 'SHA1',
  sha256: 'SHA256',
};

/**
 * Passes bytes through and, at the end, compares the checksum with `expected()` (a header value, or a trailer
 * known only once the body is complete). A mismatch fails the stream before a later stage can finish.
 */
export function createChecksumCheck(name: ChecksumName, expected: () => string | undefined): Transform {
  const sum = createChecksum(name);
  return new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      sum.update(chunk);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      sum.digest().then((actual) => {
        const want = expected();
        if (want === undefined) return cb();
        if (want !== actual) {
          return cb(new S3Error('BadDigest', `The ${DISPLAY[name]} you specified did not match the calculated checksum.`));
        }
        cb();
      }, cb);
    },
  });
}
