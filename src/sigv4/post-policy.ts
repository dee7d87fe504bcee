/**
 * PostObject authentication: a SigV4-signed policy document in the form's fields, checked as S3 checks it,
 * beside the header and query authentication in verify.ts.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { S3Error } from '../s3/errors.ts';
import type { UpstreamIdentity } from '../upstream.ts';
import { deriveSigningKey, parseAmzDate } from './canonical.ts';

export type CredentialLookup = (
  accessKeyId: string,
) => { secret: string; identity: UpstreamIdentity; buckets?: readonly string[] } | undefined;

/** The form's fields (lower-case names). */
export type FormFields = ReadonlyMap<string, string>;

function denied(message: string): S3Error {
  return new S3Error('AccessDenied', message);
}

/** SigV4 POST authentication: x-amz-signature = HMAC(signing key, base64 policy). */
export function authenticatePost(fields: FormFields, lookup: CredentialLookup, now: Date, region: string) {
  const f = fields;
  if (f.has('awsaccesskeyid') || f.has('signature')) {
    throw new S3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
  }
  const policy = f.get('policy');
  const algorithm = f.get('x-amz-algorithm');
  const credential = f.get('x-amz-credential');
  const date = f.get('x-amz-date');
  const signature = f.get('x-amz-signature');
  if (!policy || !algorithm || !credential || !date || !signature) {
    throw new S3Error('InvalidArgument', 'Bucket POST must contain a policy, x-amz-algorithm, x-amz-credential, x-amz-date and x-amz-signature.');
  }
  if (algorithm !== 'AWS4-HMAC-SHA256') throw new S3Error('InvalidArgument', 'Only AWS4-HMAC-SHA256 is supported for POST.');
  const [accessKeyId, day, credRegion, service, terminator] = credential.split('/');
  if (!accessKeyId || !day || !credRegion || service !== 's3' || terminator !== 'aws4_request' || !date.startsWith(day)) {
    throw new S3Error('InvalidArgument', 'The x-amz-credential form field is malformed.');
  }
  if (credRegion !== region) throw new S3Error('AuthorizationHeaderMalformed', `the region '${credRegion}' is wrong; expecting '${region}'`);
  if (!parseAmzDate(date)) throw new S3Error('InvalidArgument', 'The x-amz-date form field is malformed.');
  const cred = lookup(accessKeyId);
  if (!cred) throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
  const expected = createHmac('sha256', deriveSigningKey(cred.secret, day, credRegion, 's3')).update(policy).digest('hex');
  if (!/^[0-9a-f]{64}$/.test(signature) || !timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) {
    throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
  }
  let doc: { expiration?: string; conditions?: unknown[] };
  try {
    doc = JSON.parse(Buffer.from(policy, 'base64').toString('utf8')) as typeof doc;
  } catch {
    throw new S3Error('InvalidPolicyDocument', 'Invalid Policy: Invalid JSON.', { status: 400 });
  }
  const expiration = doc.expiration ? new Date(doc.expiration) : undefined;
  if (!expiration || Number.isNaN(expiration.getTime())) throw new S3Error('InvalidPolicyDocument', 'Invalid Policy: Policy missing expiration.', { status: 400 });
  if (expiration.getTime() < now.getTime()) throw denied('Invalid according to Policy: Policy expired.');
  return { identity: cred.identity, buckets: cred.buckets, conditions: Array.isArray(doc.conditions) ? doc.conditions : [] };
}

/** Every condition must hold, and every form field must be covered by one (S3's rule). */
/** The largest file the policy's content-length-range allows (Infinity without one). */
export function maxContentLength(conditions: unknown[]): number {
  let max = Infinity;
  for (const c of conditions) {
    if (Array.isArray(c) && String(c[0]).toLowerCase() === 'content-length-range') max = Math.min(max, Number(c[2]));
  }
  return Number.isNaN(max) ? 0 : max;
}

/** `size` undefined: every condition but content-length-range (checked before the file is read). */
export function checkPolicy(conditions: unknown[], fields: FormFields, bucket: string, size: number | undefined): void {
  const covered = new Set(['policy', 'x-amz-signature', 'file']);
  const value = (name: string) => (name === 'bucket' ? bucket : (fields.get(name) ?? ''));
  for (const c of conditions) {
    if (Array.isArray(c)) {
      const [op, a, b] = c as [string, unknown, unknown];
      if (String(op).toLowerCase() === 'content-length-range') {
        if (size !== undefined && (size < Number(a) || size > Number(b))) throw new S3Error('EntityTooLarge', 'Your proposed upload is outside the content-length-range of the policy.', { status: 400 });
        continue;
      }
      const name = String(a).replace(/^\$/, '').toLowerCase();
      covered.add(name);
      if (String(op).toLowerCase() === 'eq' && value(name) !== String(b)) throw denied(`Invalid according to Policy: Policy Condition failed: ["eq", "$${name}", "${String(b)}"]`);
      if (String(op).toLowerCase() === 'starts-with' && !value(name).startsWith(String(b))) {
        throw denied(`Invalid according to Policy: Policy Condition failed: ["starts-with", "$${name}", "${String(b)}"]`);
      }
    } else if (c && typeof c === 'object') {
      for (const [k, v] of Object.entries(c)) {
        const name = k.toLowerCase();
        covered.add(name);
        if (value(name) !== String(v)) throw denied(`Invalid according to Policy: Policy Condition failed: ["eq", "$${name}", "${String(v)}"]`);
      }
    }
  }
  const extra = [...fields.keys()].filter((n) => !covered.has(n) && !n.startsWith('x-ignore-'));
  if (extra.length) throw denied(`Invalid according to Policy: Extra input fields: ${extra.join(', ')}`);
}

