/**
 * PostObject authentication: the form's signature over its policy document (SigV4, or SigV2 when allowed),
 * then the policy's expiration and conditions, checked as S3 checks them. Codes and messages are S3's as
 * observed on the wire (AWS's error table names some codes S3 does not send: a failed condition is 403
 * AccessDenied, not 400 InvalidPolicyDocument; a missing field is InvalidArgument naming it).
 *
 * Order, as S3: the signature fields → the signature over the policy text as sent (before it is decoded) →
 * the policy's shape (400 InvalidPolicyDocument) → its expiration → its conditions → fields no condition
 * covers. Field and condition names compare without case, values with case.
 */
import { createHmac, createSecretKey, timingSafeEqual } from 'node:crypto';
import { S3Error } from '../s3/errors.ts';
import type { UpstreamIdentity } from '../upstream.ts';
import { verifyPolicySignatureV2 } from '../sigv2/verify.ts';
import { deriveSigningKey, parseAmzDate } from './canonical.ts';
import { SIGV4_MESSAGES } from './verify.ts';

export type CredentialLookup = (
  accessKeyId: string,
) => { secret: string; identity: UpstreamIdentity; buckets?: readonly string[] } | undefined;

/** The form's fields before the file: lower-case name → value (repeated fields joined with `,`, as S3 reads them). */
export type FormFields = ReadonlyMap<string, string>;

/** One condition of a policy, checked against the fields; `shown` is how S3 prints it when it fails. */
export type Condition =
  | { readonly op: 'eq' | 'starts-with'; readonly field: string | undefined; readonly value: string; readonly shown: string }
  | { readonly op: 'content-length-range'; readonly min: number; readonly max: number; readonly shown: string };

export interface Policy {
  readonly expiration: Date;
  readonly conditions: readonly Condition[];
}

export interface PostAuth {
  readonly identity: UpstreamIdentity;
  readonly buckets: readonly string[] | undefined;
  readonly policy: Policy;
  /** Fields the coverage rule leaves out (the signature's own, beside `policy`, `file` and `x-ignore-*`). */
  readonly exempt: ReadonlySet<string>;
}

const V4_FIELDS = [
  ['x-amz-algorithm', 'X-Amz-Algorithm'],
  ['x-amz-credential', 'X-Amz-Credential'],
  ['x-amz-date', 'X-Amz-Date'],
  ['x-amz-signature', 'X-Amz-Signature'],
] as const;
const V2_FIELDS = [
  ['awsaccesskeyid', 'AWSAccessKeyId'],
  ['signature', 'Signature'],
] as const;

/** S3's answer to a form that lacks a field it needs (two spaces after the first sentence, as S3 writes it). */
export function missingField(name: string): S3Error {
  return new S3Error('InvalidArgument', `Bucket POST must contain a field named '${name}'.  If it is specified, please check the order of the fields.`, {
    extra: { ArgumentName: name, ArgumentValue: '' },
  });
}

function denied(message: string): S3Error {
  return new S3Error('AccessDenied', message);
}

function invalidPolicy(what: string): S3Error {
  return new S3Error('InvalidPolicyDocument', `Invalid Policy: ${what}`, { status: 400 });
}

/** A value from the form safe to echo in an error; otherwise a placeholder. */
function echo(s: string): string {
  return /^[A-Za-z0-9._/-]{0,128}$/.test(s) ? s : '(invalid)';
}

/** A form with none of the signature fields: anonymous (no policy applies; the store's ACLs decide). */
export function isAnonymousForm(fields: FormFields): boolean {
  return ![...V4_FIELDS, ...V2_FIELDS].some(([n]) => fields.has(n));
}

/**
 * Authenticates a form: the signature over its policy, then the policy's shape and expiration. An anonymous
 * form (no signature fields) is refused here; the caller decides first whether it serves those.
 */
export function authenticatePost(fields: FormFields, lookup: CredentialLookup, now: Date, region: string, allowSigV2: boolean): PostAuth {
  const v4 = V4_FIELDS.some(([n]) => fields.has(n));
  const v2 = !v4 && V2_FIELDS.some(([n]) => fields.has(n));
  if (!v4 && !v2) throw denied(SIGV4_MESSAGES.accessDenied);
  if (v2 && !allowSigV2) throw new S3Error('InvalidRequest', SIGV4_MESSAGES.unsupportedMechanism);
  for (const [n, shown] of v4 ? V4_FIELDS : V2_FIELDS) if (!fields.get(n)) throw missingField(shown);
  const policyText = fields.get('policy');
  if (!policyText) throw missingField('Policy');

  let cred: ReturnType<CredentialLookup>;
  if (v4) {
    const algorithm = fields.get('x-amz-algorithm')!;
    const credential = fields.get('x-amz-credential')!;
    const date = fields.get('x-amz-date')!;
    const signature = fields.get('x-amz-signature')!;
    const argument = (message: string, name: string, value: string, extra: Record<string, string> = {}) =>
      new S3Error('InvalidArgument', message, { extra: { ArgumentName: name, ArgumentValue: echo(value), ...extra } });
    if (algorithm !== 'AWS4-HMAC-SHA256') throw argument('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"', 'X-Amz-Algorithm', algorithm);
    const parts = credential.split('/');
    const [accessKeyId, day, credRegion, service, terminator] = parts;
    if (parts.length !== 5 || day === undefined || credRegion === undefined || service === undefined || terminator === undefined) {
      throw argument('the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".', 'X-Amz-Credential', credential);
    }
    if (!accessKeyId) throw argument('a non-empty Access Key (AKID) must be provided in the credential.', 'X-Amz-Credential', credential);
    if (!/^\d{8}$/.test(day)) throw argument(`incorrect date format "${echo(day)}". This date in the credential must be in the format "yyyyMMdd".`, 'X-Amz-Credential', credential);
    if (credRegion !== region) throw argument(`the region '${echo(credRegion)}' is wrong; expecting '${region}'`, 'X-Amz-Credential', credential, { Region: region });
    if (service !== 's3') throw argument(`incorrect service "${echo(service)}". This endpoint belongs to "s3".`, 'X-Amz-Credential', credential);
    if (terminator !== 'aws4_request') throw argument(`incorrect terminal "${echo(terminator)}". This endpoint uses "aws4_request".`, 'X-Amz-Credential', credential);
    if (!parseAmzDate(date)) throw argument('X-Amz-Date must be formated via ISO8601 Long format', 'X-Amz-Date', date);
    cred = lookup(accessKeyId);
    if (!cred) throw new S3Error('InvalidAccessKeyId', SIGV4_MESSAGES.invalidAccessKeyId);
    const expected = createHmac('sha256', createSecretKey(deriveSigningKey(cred.secret, day, credRegion, 's3'))).update(policyText).digest('hex');
    if (!/^[0-9a-f]{64}$/.test(signature) || !timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) {
      throw new S3Error('SignatureDoesNotMatch', SIGV4_MESSAGES.signatureMismatch);
    }
  } else {
    cred = lookup(fields.get('awsaccesskeyid')!);
    if (!cred) throw new S3Error('InvalidAccessKeyId', SIGV4_MESSAGES.invalidAccessKeyId);
    verifyPolicySignatureV2(policyText, fields.get('signature')!, cred.secret);
  }

  const policy = parsePolicy(policyText);
  if (policy.expiration.getTime() < now.getTime()) throw denied('Invalid according to Policy: Policy expired.');
  const exempt = new Set(['policy', 'file', ...(v4 ? ['x-amz-signature'] : ['awsaccesskeyid', 'signature'])]);
  return { identity: cred.identity, buckets: cred.buckets, policy, exempt };
}

/** ISO 8601 in UTC, with or without fractions of a second: what S3 reads in `expiration`. */
const EXPIRATION = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

/** The policy document (base64 JSON) as S3 reads it; 400 InvalidPolicyDocument with S3's words otherwise. */
export function parsePolicy(policyBase64: string): Policy {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(policyBase64, 'base64').toString('utf8'));
  } catch {
    throw invalidPolicy('Invalid JSON.');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalidPolicy('Invalid JSON.');
  // The two members are named exactly so: `EXPIRATION` or `Conditions` is another member.
  for (const name of Object.keys(doc)) if (name !== 'expiration' && name !== 'conditions') throw invalidPolicy(`Unexpected: '${echo(name.toLowerCase())}'`);
  const { expiration, conditions } = doc as { expiration?: unknown; conditions?: unknown };
  if (expiration === undefined) throw invalidPolicy('Policy missing expiration.');
  if (typeof expiration !== 'string' || !EXPIRATION.test(expiration) || Number.isNaN(Date.parse(expiration))) {
    throw invalidPolicy(`Invalid 'expiration' value: '${typeof expiration === 'string' ? expiration.slice(0, 64) : ''}'`);
  }
  if (conditions === undefined) throw invalidPolicy('Policy missing conditions.');
  if (!Array.isArray(conditions)) throw invalidPolicy("Invalid 'conditions' value: must be a List.");
  return { expiration: new Date(expiration), conditions: conditions.map(parseCondition) };
}

function show(items: readonly unknown[]): string {
  return '[' + items.map((i) => JSON.stringify(i)).join(', ') + ']';
}

/** `$name` → the lower-case field name; a name without `$` matches nothing (S3 fails the condition). */
function fieldOf(name: string): string | undefined {
  return name.startsWith('$') ? name.slice(1).toLowerCase() : undefined;
}

function parseCondition(c: unknown): Condition {
  if (Array.isArray(c)) {
    if (c.length === 0 || typeof c[0] !== 'string') throw invalidPolicy('Invalid Condition: missing operation identifier.');
    const op = c[0].toLowerCase();
    if (op !== 'eq' && op !== 'starts-with' && op !== 'content-length-range') throw invalidPolicy(`Invalid Condition: unknown operation '${echo(c[0])}'.`);
    if (c.length !== 3) throw invalidPolicy(`Invalid ${op}: wrong number of arguments.`);
    const shown = show(c);
    if (op === 'content-length-range') {
      const bound = (v: unknown): number => {
        // Floats are refused as S3 refuses them; a string that is no number fails the condition (403).
        if (typeof v === 'number') {
          if (!Number.isInteger(v)) throw invalidPolicy('Invalid JSON.');
          return v;
        }
        if (typeof v === 'string') return /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
        throw invalidPolicy('Invalid JSON.');
      };
      const min = bound(c[1]);
      const max = bound(c[2]);
      if (min < 0 || max < 0) throw invalidPolicy('Invalid content-length-range: a bound is negative.');
      return { op, min, max, shown };
    }
    if (typeof c[1] !== 'string' || typeof c[2] !== 'string') throw invalidPolicy('Invalid JSON.');
    return { op, field: fieldOf(c[1]), value: c[2], shown };
  }
  if (typeof c === 'object' && c !== null) {
    const entries = Object.entries(c);
    const [entry] = entries;
    if (entries.length !== 1 || entry === undefined) throw invalidPolicy('Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.');
    const [name, value] = entry;
    if (value === null) throw invalidPolicy('Invalid JSON.');
    if (typeof value !== 'string') throw invalidPolicy('Invalid Simple-Condition: value must be a string.');
    // S3 prints a simple condition as the `eq` it stands for.
    return { op: 'eq', field: name.toLowerCase(), value, shown: show(['eq', '$' + name, value]) };
  }
  throw invalidPolicy('Invalid condition test: must be a List or Object.');
}

/** `content-type` values that are comma lists: every item must match a `starts-with` (S3's documented rule). */
function startsWith(field: string, value: string, prefix: string): boolean {
  if (field !== 'content-type' || !value.includes(',')) return value.startsWith(prefix);
  return value.split(',').every((v) => v.trim().startsWith(prefix));
}

/**
 * Every condition but the size holds, and every field is covered by one (S3's rule), before the file is read.
 * `names` gives the fields' names as sent, for the message naming uncovered ones.
 */
export function checkPolicy(auth: Pick<PostAuth, 'policy' | 'exempt'>, fields: FormFields, names: ReadonlyMap<string, string>, bucket: string): void {
  const covered = new Set(auth.exempt);
  for (const c of auth.policy.conditions) {
    if (c.op === 'content-length-range') {
      if (Number.isNaN(c.min) || Number.isNaN(c.max)) throw denied(`Invalid according to Policy: Policy Condition failed: ${c.shown}`);
      continue;
    }
    if (c.field !== undefined) covered.add(c.field);
    const value = c.field === 'bucket' ? bucket : c.field === undefined ? undefined : fields.get(c.field);
    // A condition on a field the form lacks fails, even `starts-with ""` (S3's answer; docs/CLIENTS.md).
    const holds = value !== undefined && (c.op === 'eq' ? value === c.value : startsWith(c.field ?? '', value, c.value));
    if (!holds) throw denied(`Invalid according to Policy: Policy Condition failed: ${c.shown}`);
  }
  const extra = [...fields.keys()].filter((n) => !covered.has(n) && !n.startsWith('x-ignore-'));
  if (extra.length > 0) throw denied(`Invalid according to Policy: Extra input fields: ${extra.map((n) => names.get(n) ?? n).join(', ')}`);
}

/** The file sizes the policy allows: the tightest of its content-length-range conditions. */
export function sizeRange(policy: Policy): { min: number; max: number } {
  let min = 0;
  let max = Infinity;
  for (const c of policy.conditions) {
    if (c.op !== 'content-length-range') continue;
    min = Math.max(min, c.min);
    max = Math.min(max, c.max);
  }
  return { min, max };
}

/** The file's size against the policy's range, once it is known (bounds inclusive). */
export function checkSize(policy: Policy, size: number): void {
  const { min, max } = sizeRange(policy);
  if (size > max) {
    throw new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', { extra: { ProposedSize: String(size), MaxSizeAllowed: String(max) } });
  }
  if (size < min) {
    throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size', { extra: { ProposedSize: String(size), MinSizeAllowed: String(min) } });
  }
}
