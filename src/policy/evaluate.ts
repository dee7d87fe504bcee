/**
 * The proxy's part of a bucket policy: statements testing the SSE-C key (document.ts), evaluated with AWS's
 * semantics for what they can decide. The store evaluates every other statement and every Allow; the proxy can
 * only add denials, so:
 * - a Deny statement denies when principal, action and resource match and every SSE-C test holds (its other
 *   condition keys are taken as holding: stricter than AWS when they would not);
 * - an Allow statement (given to the store without its SSE-C tests) denies when principal, action and resource
 *   match and an SSE-C test fails: what it would not have allowed on AWS (stricter than AWS when another grant
 *   would have allowed it).
 * Principals the proxy cannot resolve (AWS, canonical and federated ids) are taken to match a signed request.
 */
import type { Patterns, Principals, ProxyStatement, SsecTest } from './document.ts';

export interface PolicyRequest {
  /** IAM action, e.g. `s3:PutObject`. */
  readonly action: string;
  /** ARN of the bucket or object, e.g. `arn:aws:s3:::bucket/key`. */
  readonly resource: string;
  /** The keys are unknown (DeleteObjects names them in its body): any object of the bucket may be one. */
  readonly anyKeyOf?: string;
  readonly anonymous: boolean;
  /** `s3:x-amz-server-side-encryption-customer-algorithm`, undefined when absent from the request's context. */
  readonly ssecAlgorithm: string | undefined;
}

/** The statement that denies the request, if one does. */
export function deniedBy(statements: readonly ProxyStatement[], r: PolicyRequest): ProxyStatement | undefined {
  return statements.find((s) => {
    if (!principalMatches(s.principals, r.anonymous) || !matches(s.actions, r.action, true)) return false;
    if (!resourceMatches(s.resources, r)) return false;
    const hold = s.tests.every((t) => holds(t, r.ssecAlgorithm));
    return s.effect === 'Deny' ? hold : !hold;
  });
}

function principalMatches(p: Principals, anonymous: boolean): boolean {
  // An anonymous request is none of the named principals; a signed one may be any of them.
  const named = p.anyone || (!anonymous && p.named > 0);
  if (!p.not) return named;
  // NotPrincipal: everyone but those listed. A signed request the proxy cannot resolve is taken as not listed.
  return !p.anyone;
}

function matches(p: Patterns, value: string, ignoreCase: boolean): boolean {
  const any = p.patterns.some((pattern) => wildcardMatch(pattern, value, ignoreCase));
  return p.not ? !any : any;
}

function resourceMatches(p: Patterns, r: PolicyRequest): boolean {
  if (r.anyKeyOf === undefined) return matches(p, r.resource, false);
  // Some key of the bucket matches the pattern (Resource), or some key does not (NotResource): conservative.
  const prefix = `arn:aws:s3:::${r.anyKeyOf}/`;
  return p.not ? !p.patterns.some((x) => x === '*' || x === `${prefix}*`) : p.patterns.some((x) => prefixCompatible(x, prefix));
}

function holds(t: SsecTest, value: string | undefined): boolean {
  if (t.operator === 'Null') return t.values.some((v) => (v.toLowerCase() === 'true') === (value === undefined));
  if (value === undefined) return t.ifExists || t.operator.includes('Not');
  switch (t.operator) {
    case 'StringEquals':
      return t.values.includes(value);
    case 'StringNotEquals':
      return !t.values.includes(value);
    case 'StringEqualsIgnoreCase':
      return t.values.some((v) => v.toLowerCase() === value.toLowerCase());
    case 'StringNotEqualsIgnoreCase':
      return !t.values.some((v) => v.toLowerCase() === value.toLowerCase());
    case 'StringLike':
      return t.values.some((v) => wildcardMatch(v, value, false));
    case 'StringNotLike':
      return !t.values.some((v) => wildcardMatch(v, value, false));
    default:
      // document.ts refuses every other operator; a test that cannot be decided holds (a Deny stays a Deny).
      return true;
  }
}

/** IAM wildcards: `*` any run of characters, `?` one character. Linear in practice (greedy with one backtrack point). */
export function wildcardMatch(pattern: string, value: string, ignoreCase: boolean): boolean {
  const p = ignoreCase ? pattern.toLowerCase() : pattern;
  const v = ignoreCase ? value.toLowerCase() : value;
  let i = 0;
  let j = 0;
  let star = -1;
  let mark = 0;
  while (j < v.length) {
    if (i < p.length && (p[i] === '?' || p[i] === v[j])) {
      i++;
      j++;
    } else if (i < p.length && p[i] === '*') {
      star = i++;
      mark = j;
    } else if (star >= 0) {
      i = star + 1;
      j = ++mark;
    } else {
      return false;
    }
  }
  while (i < p.length && p[i] === '*') i++;
  return i === p.length;
}

/** Some string starting with `prefix` matches `pattern`. */
function prefixCompatible(pattern: string, prefix: string): boolean {
  for (let i = 0; i < prefix.length; i++) {
    if (i >= pattern.length) return false;
    if (pattern[i] === '*') return true;
    if (pattern[i] !== '?' && pattern[i] !== prefix[i]) return false;
  }
  return true;
}
