/**
 * Bucket policies whose statements test the SSE-C condition key. The store never sees the SSE-C headers (the
 * proxy strips them to encrypt itself), so it cannot evaluate those statements: they are kept from what the
 * store enforces and evaluated by the proxy (evaluate.ts). The client's whole document rides inside the
 * stored policy as one inert statement, so GetBucketPolicy returns it byte for byte and any replica recovers
 * the SSE-C statements from the store alone (no state in the proxy). docs/SECURITY.md, "Bucket policies".
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { S3Error } from '../s3/errors.ts';

/** The only SSE-C condition key AWS defines (Service Authorization Reference; on s3:PutObject requests). */
export const SSEC_CONDITION_KEY = 's3:x-amz-server-side-encryption-customer-algorithm';

/** The stored statement that carries the client's document. Reserved: a client's statement may not use it. */
export const CARRIER_SID = 'SsecProxyOriginal';
/** Carrier keys: `<bucket>/.ssec-proxy-policy/v1/<index>/<base64url of the deflated document>`. */
const CARRIER_DIR = '.ssec-proxy-policy/v1/';
/** Base64url characters per carrier resource: each ARN stays well under S3's 1024-byte key limit. */
const CHUNK_CHARS = 900;
/** AWS's bucket policy limit, counted without whitespace as AWS counts it. */
export const MAX_POLICY_BYTES = 20 * 1024;
/** A carrier never inflates beyond this (a whitespace-rich 20 KB document is far below it). */
const MAX_INFLATED = 1024 * 1024;

/** Operators the proxy evaluates on the SSE-C key (each also with `IfExists`, except Null). */
const OPERATORS = new Set(['Null', 'StringEquals', 'StringNotEquals', 'StringEqualsIgnoreCase', 'StringNotEqualsIgnoreCase', 'StringLike', 'StringNotLike']);

/** One test of the SSE-C key: `operator` without its `IfExists` suffix; values as strings. */
export interface SsecTest {
  readonly operator: string;
  readonly ifExists: boolean;
  readonly values: readonly string[];
}

/** Who a statement names: `*` (anyone, anonymous included), named principals the proxy cannot resolve, services. */
export interface Principals {
  readonly not: boolean;
  readonly anyone: boolean;
  /** AWS, CanonicalUser and Federated principals: the proxy cannot tell whether a signed request is one of them. */
  readonly named: number;
}

export interface Patterns {
  readonly not: boolean;
  readonly patterns: readonly string[];
}

/** A statement with SSE-C tests, as the proxy evaluates it. */
export interface ProxyStatement {
  readonly sid: string | undefined;
  readonly effect: 'Allow' | 'Deny';
  readonly principals: Principals;
  readonly actions: Patterns;
  readonly resources: Patterns;
  /** All must hold (AND); other condition keys of the statement are not evaluated by the proxy. */
  readonly tests: readonly SsecTest[];
}

type Json = Record<string, unknown>;

const malformed = (message: string) => new S3Error('MalformedPolicy', message);

/** What is stored upstream for a client's document, and the statements the proxy enforces. */
export interface SplitPolicy {
  /** The policy document given to the store. */
  readonly stored: string;
  readonly statements: readonly ProxyStatement[];
}

/**
 * The client's document → what the store gets. Without SSE-C tests it is stored as it is. With them: Deny
 * statements testing the key are left out (the proxy enforces them), Allow statements testing it go to the store
 * without those tests (the proxy denies what they would not allow), everything else as it is, plus the carrier.
 */
export function splitPolicy(text: string, bucket: string): SplitPolicy {
  const doc = parseDocument(text);
  const raw = statementsOf(doc);
  if (raw.some((s) => s.Sid === CARRIER_SID)) throw malformed(`The statement id ${CARRIER_SID} is reserved by the SSE-C proxy.`);
  const statements = raw.filter(hasSsecTest).map(toProxyStatement);
  if (statements.length === 0) return { stored: text, statements };
  const forStore = raw.flatMap((s) => (!hasSsecTest(s) ? [s] : s.Effect === 'Deny' ? [] : [withoutSsecTests(s)]));
  const stored: Json = {};
  for (const [k, v] of Object.entries(doc)) stored[k] = k === 'Statement' ? [...forStore, carrier(text, bucket)] : v;
  return { stored: JSON.stringify(stored), statements };
}

/**
 * A stored policy → the client's document and the proxy's statements. A policy without a carrier is the
 * client's as it is (nothing for the proxy); a carrier that does not decode throws (the caller fails closed).
 */
export function readStoredPolicy(stored: string): { original: string; statements: readonly ProxyStatement[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(stored);
  } catch {
    return { original: stored, statements: [] };
  }
  const raw = isObject(doc) ? [doc.Statement].flat().filter(isObject) : [];
  const found = raw.filter((s) => s.Sid === CARRIER_SID).at(-1);
  if (!found) return { original: stored, statements: [] };
  const resources = [found.Resource].flat();
  const chunks: string[] = [];
  for (const r of resources) {
    const m = typeof r === 'string' ? /\/\.ssec-proxy-policy\/v1\/(\d{1,6})\/([A-Za-z0-9_-]+)$/.exec(r) : null;
    // An index beyond the resources' count cannot be one the proxy wrote (and would make a huge sparse array).
    if (!m || Number(m[1]) >= resources.length) throw new Error('the stored policy carrier is unreadable');
    chunks[Number(m[1])] = m[2]!;
  }
  if (chunks.length === 0 || chunks.some((c) => c === undefined) || Object.keys(chunks).length !== chunks.length) {
    throw new Error('the stored policy carrier is incomplete');
  }
  const original = inflateRawSync(Buffer.from(chunks.join(''), 'base64url'), { maxOutputLength: MAX_INFLATED }).toString('utf8');
  return { original, statements: statementsOf(parseDocument(original)).filter(hasSsecTest).map(toProxyStatement) };
}

function carrier(text: string, bucket: string): Json {
  const encoded = deflateRawSync(Buffer.from(text, 'utf8'), { level: 9 }).toString('base64url');
  const resources: string[] = [];
  for (let i = 0; i * CHUNK_CHARS < encoded.length; i++) {
    resources.push(`arn:aws:s3:::${bucket}/${CARRIER_DIR}${i}/${encoded.slice(i * CHUNK_CHARS, (i + 1) * CHUNK_CHARS)}`);
  }
  // Denies reading keys nobody writes: inert for the store, and a valid statement for any S3 policy parser.
  return { Sid: CARRIER_SID, Effect: 'Deny', Principal: '*', Action: 's3:GetObject', Resource: resources };
}

function parseDocument(text: string): Json {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = undefined;
  }
  if (!isObject(doc) || !text.trimStart().startsWith('{')) throw malformed("Policies must be valid JSON and the first byte must be '{'");
  if (Buffer.byteLength(JSON.stringify(doc)) > MAX_POLICY_BYTES) throw malformed('Policy exceeds the maximum allowed document size.');
  if (doc.Statement === undefined) throw malformed('Missing required field Statement');
  return doc;
}

function statementsOf(doc: Json): Json[] {
  const list = [doc.Statement].flat();
  if (!list.every(isObject)) throw malformed('Statement must be an object or a list of objects');
  return list;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `IfExists` and set-operator prefixes apart from the base operator. */
function operatorParts(op: string): { base: string; ifExists: boolean; set: boolean } {
  const set = /^For(Any|All)Value:/i.test(op);
  const rest = op.replace(/^For(Any|All)Value:/i, '');
  const ifExists = /IfExists$/.test(rest);
  return { base: ifExists ? rest.slice(0, -'IfExists'.length) : rest, ifExists, set };
}

const isSsecKey = (k: string) => k.toLowerCase() === SSEC_CONDITION_KEY;

function hasSsecTest(s: Json): boolean {
  const c = s.Condition;
  return isObject(c) && Object.values(c).some((block) => isObject(block) && Object.keys(block).some(isSsecKey));
}

function withoutSsecTests(s: Json): Json {
  const condition: Json = {};
  for (const [op, block] of Object.entries(s.Condition as Json)) {
    const kept = Object.fromEntries(Object.entries(block as Json).filter(([k]) => !isSsecKey(k)));
    if (Object.keys(kept).length > 0) condition[op] = kept;
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(s)) if (k !== 'Condition' || Object.keys(condition).length > 0) out[k] = k === 'Condition' ? condition : v;
  return out;
}

function toProxyStatement(s: Json): ProxyStatement {
  if (s.Effect !== 'Allow' && s.Effect !== 'Deny') throw malformed(`Invalid effect: ${String(s.Effect).slice(0, 32)}`);
  const tests: SsecTest[] = [];
  for (const [op, block] of Object.entries(s.Condition as Json)) {
    if (!isObject(block)) throw malformed('Invalid Condition block');
    for (const [k, v] of Object.entries(block)) {
      if (!isSsecKey(k)) continue;
      const { base, ifExists, set } = operatorParts(op);
      if (set || !OPERATORS.has(base) || (base === 'Null' && ifExists)) {
        throw new S3Error('NotImplemented', `The SSE-C proxy does not evaluate the condition operator ${op.slice(0, 64)} on ${SSEC_CONDITION_KEY}.`);
      }
      const values = [v].flat();
      if (values.length === 0 || !values.every((x) => typeof x === 'string' || typeof x === 'boolean')) throw malformed(`Invalid value for ${SSEC_CONDITION_KEY}`);
      tests.push({ operator: base, ifExists, values: values.map(String) });
    }
  }
  return {
    sid: typeof s.Sid === 'string' ? s.Sid : undefined,
    effect: s.Effect,
    principals: principalsOf(s),
    actions: patternsOf(s, 'Action'),
    resources: patternsOf(s, 'Resource'),
    tests,
  };
}

function patternsOf(s: Json, field: 'Action' | 'Resource'): Patterns {
  const not = s[field] === undefined && s[`Not${field}`] !== undefined;
  const patterns = [not ? s[`Not${field}`] : s[field]].flat();
  if (patterns.length === 0 || patterns[0] === undefined || !patterns.every((p) => typeof p === 'string')) {
    throw malformed(`Missing required field ${field}`);
  }
  return { not, patterns: patterns as string[] };
}

function principalsOf(s: Json): Principals {
  const not = s.Principal === undefined && s.NotPrincipal !== undefined;
  const p = not ? s.NotPrincipal : s.Principal;
  if (p === '*') return { not, anyone: true, named: 0 };
  if (!isObject(p)) throw malformed('Missing required field Principal');
  let anyone = false;
  let named = 0;
  for (const [kind, v] of Object.entries(p)) {
    const ids = [v].flat().map(String);
    if (kind === 'AWS' && ids.includes('*')) anyone = true;
    else if (kind === 'AWS' || kind === 'CanonicalUser' || kind === 'Federated') named += ids.length;
  }
  return { not, anyone, named };
}
