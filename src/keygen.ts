/**
 * `s3-ssec-proxy keygen`: a customer key for SSE-C, in the forms clients take (raw file, base64, base64 MD5).
 * Random keys are the recommendation; a passphrase-derived key (scrypt) is offered for people who must be able
 * to type it, with its parameters printed so it can be derived again.
 */
import { createHash, randomBytes, scryptSync } from 'node:crypto';

export interface GeneratedKey {
  key: Buffer;
  base64: string;
  md5: string;
  /** Present for passphrase-derived keys: what is needed to derive the same key again. */
  scrypt?: { salt: string; N: number; r: number; p: number };
}

/** scrypt cost (2^17, r=8, p=1): about 128 MiB and a few hundred ms, so guessing is slow. */
export const SCRYPT = { N: 2 ** 17, r: 8, p: 1 };

export function generateKey(opts: { passphrase?: string; salt?: Buffer } = {}): GeneratedKey {
  let key: Buffer;
  let scrypt: GeneratedKey['scrypt'];
  if (opts.passphrase !== undefined) {
    const salt = opts.salt ?? randomBytes(16);
    key = scryptSync(opts.passphrase.normalize('NFC'), salt, 32, { ...SCRYPT, maxmem: 256 * 1024 * 1024 });
    scrypt = { salt: salt.toString('base64'), ...SCRYPT };
  } else {
    key = randomBytes(32);
  }
  return {
    key,
    base64: key.toString('base64'),
    md5: createHash('md5').update(key).digest('base64'),
    ...(scrypt ? { scrypt } : {}),
  };
}

/** For people: the key's forms and how aws-cli takes them. With `file`, the key is in it and not printed. */
export function describeKey(k: GeneratedKey, file?: string): string {
  const lines = file
    ? [
        `key written to:   ${file} (32 raw bytes, mode 0600)`,
        `key MD5 (base64): ${k.md5}`,
        '',
        `aws-cli:  --sse-c AES256 --sse-c-key fileb://${file}`,
      ]
    : [
        `key (base64):     ${k.base64}`,
        `key MD5 (base64): ${k.md5}`,
        '',
        'aws-cli:  --sse-customer-algorithm AES256 --sse-customer-key <key base64> --sse-customer-key-md5 <key MD5>',
        '          or save the raw 32 bytes (base64 -d) to a file and use --sse-c AES256 --sse-c-key fileb://FILE',
      ];
  if (k.scrypt) {
    lines.push(
      '',
      `derived with scrypt: salt=${k.scrypt.salt} N=${k.scrypt.N} r=${k.scrypt.r} p=${k.scrypt.p} (keep these to derive it again)`,
      'warning: a passphrase is weaker than 32 random bytes; anyone who guesses it reads every object under it.',
    );
  }
  return lines.join('\n');
}

/** For programs (`--json`): the key in base64 (or the file holding it), its MD5, the scrypt parameters if any. */
export function keyJson(k: GeneratedKey, file?: string): { key?: string; file?: string; keyMd5: string; scrypt?: GeneratedKey['scrypt'] } {
  return { ...(file ? { file } : { key: k.base64 }), keyMd5: k.md5, ...(k.scrypt ? { scrypt: k.scrypt } : {}) };
}
