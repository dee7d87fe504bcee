/**
 * SigV2 verification against signatures computed independently (botocore's HmacV1Auth and HmacV1QueryAuth,
 * test/vectors/sigv2.json), their tampers, and each S3 error the verifier reports.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { S3Error } from '../../src/s3/errors.ts';
import { SIGV4_MESSAGES } from '../../src/sigv4/verify.ts';
import { authenticateRequest, SIGV2_MESSAGES, verifyPolicySignatureV2, verifyRequestV2, type VerifyV2Options } from '../../src/sigv2/verify.ts';

interface HeaderVector {
  name: string;
  method: string;
  url: string;
  resourcePath: string;
  headers: Record<string, string>;
  authorization: string;
}
interface QueryVector {
  name: string;
  method: string;
  url: string;
  resourcePath: string;
}
const vectors = JSON.parse(readFileSync(new URL('../vectors/sigv2.json', import.meta.url), 'utf8')) as {
  secret: string;
  date: string;
  header: HeaderVector[];
  query: QueryVector[];
  post: { policy: string; signature: string };
};
const AK = 'AKIDV2EXAMPLE';
const signedAt = new Date(vectors.date);
const opts = (resourcePath: string, now = signedAt): VerifyV2Options => ({
  lookupSecret: (ak) => (ak === AK ? vectors.secret : undefined),
  now,
  resourcePath,
  region: 'us-east-1',
});

function rejects(fn: () => unknown, code: string, message?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof S3Error, String(e));
    assert.equal(e.code, code);
    if (message !== undefined) assert.equal(e.message, message);
    return true;
  });
}

describe('SigV2 header authentication (botocore HmacV1Auth signatures)', () => {
  for (const v of vectors.header) {
    const headers = { ...v.headers, authorization: v.authorization };
    test(`${v.name}: accepted`, () => {
      const r = verifyRequestV2({ method: v.method, url: v.url, headers }, opts(v.resourcePath));
      assert.equal(r.accessKeyId, AK);
      assert.equal(r.payloadHash, 'UNSIGNED-PAYLOAD', 'the body is not signed');
      assert.equal(r.presigned, false);
    });
    test(`${v.name}: another method, path or x-amz header → SignatureDoesNotMatch`, () => {
      const other = v.method === 'GET' ? 'HEAD' : 'GET';
      rejects(() => verifyRequestV2({ method: other, url: v.url, headers }, opts(v.resourcePath)), 'SignatureDoesNotMatch', SIGV4_MESSAGES.signatureMismatch);
      rejects(() => verifyRequestV2({ method: v.method, url: v.url, headers }, opts(v.resourcePath + 'x')), 'SignatureDoesNotMatch');
      rejects(() => verifyRequestV2({ method: v.method, url: v.url, headers: { ...headers, 'x-amz-meta-added': '1' } }, opts(v.resourcePath)), 'SignatureDoesNotMatch');
    });
  }

  test('an SSE-C header changed after signing → SignatureDoesNotMatch (every x-amz-* header is signed)', () => {
    const v = vectors.header.find((x) => 'x-amz-server-side-encryption-customer-key' in x.headers)!;
    const headers = { ...v.headers, authorization: v.authorization, 'x-amz-server-side-encryption-customer-key-md5': 'AAAAAAAAAAAAAAAAAAAAAA==' };
    rejects(() => verifyRequestV2({ method: v.method, url: v.url, headers }, opts(v.resourcePath)), 'SignatureDoesNotMatch');
  });

  test('a sub-resource added after signing → SignatureDoesNotMatch; another parameter is not signed', () => {
    const v = vectors.header[0]!;
    const headers = { ...v.headers, authorization: v.authorization };
    rejects(() => verifyRequestV2({ method: v.method, url: v.url + '?acl', headers }, opts(v.resourcePath)), 'SignatureDoesNotMatch');
    verifyRequestV2({ method: v.method, url: v.url + '?prefix=x', headers }, opts(v.resourcePath));
  });

  test('errors: unknown key, malformed header, no date, skewed clock', () => {
    const v = vectors.header[0]!;
    const input = (authorization: string, h: Record<string, string> = v.headers) => ({ method: v.method, url: v.url, headers: { ...h, authorization } });
    rejects(() => verifyRequestV2(input(v.authorization.replace(AK, 'AKUNKNOWN')), opts(v.resourcePath)), 'InvalidAccessKeyId', SIGV4_MESSAGES.invalidAccessKeyId);
    rejects(() => verifyRequestV2(input(`AWS ${AK}`), opts(v.resourcePath)), 'InvalidArgument', SIGV2_MESSAGES.headerInvalid);
    rejects(() => verifyRequestV2(input(v.authorization, {}), opts(v.resourcePath)), 'AccessDenied', SIGV4_MESSAGES.needDate);
    const later = new Date(signedAt.getTime() + 16 * 60_000);
    rejects(() => verifyRequestV2(input(v.authorization), opts(v.resourcePath, later)), 'RequestTimeTooSkewed', SIGV4_MESSAGES.skewed);
    verifyRequestV2(input(v.authorization), opts(v.resourcePath, new Date(signedAt.getTime() + 14 * 60_000)));
  });
});

describe('SigV2 query authentication (botocore HmacV1QueryAuth signatures)', () => {
  for (const v of vectors.query) {
    test(`${v.name}: accepted before Expires, refused after`, () => {
      const r = verifyRequestV2({ method: v.method, url: v.url, headers: {} }, opts(v.resourcePath));
      assert.equal(r.presigned, true);
      assert.equal(r.payloadHash, 'UNSIGNED-PAYLOAD');
      const after = new Date(1175139621 * 1000);
      rejects(() => verifyRequestV2({ method: v.method, url: v.url, headers: {} }, opts(v.resourcePath, after)), 'AccessDenied', SIGV4_MESSAGES.expired);
    });
    test(`${v.name}: a changed Expires or method → SignatureDoesNotMatch`, () => {
      const url = v.url.replace('Expires=1175139620', 'Expires=1175139700');
      rejects(() => verifyRequestV2({ method: v.method, url, headers: {} }, opts(v.resourcePath)), 'SignatureDoesNotMatch');
      rejects(() => verifyRequestV2({ method: 'DELETE', url: v.url, headers: {} }, opts(v.resourcePath)), 'SignatureDoesNotMatch');
    });
  }
  test('a missing parameter → AccessDenied, as S3', () => {
    const v = vectors.query[0]!;
    const url = v.url.replace(/&Expires=\d+/, '');
    rejects(() => verifyRequestV2({ method: v.method, url, headers: {} }, opts(v.resourcePath)), 'AccessDenied', SIGV2_MESSAGES.queryRequired);
  });
});

describe('SigV2 POST policy signature', () => {
  test('base64 HMAC-SHA1 of the policy as sent', () => {
    verifyPolicySignatureV2(vectors.post.policy, vectors.post.signature, vectors.secret);
    rejects(() => verifyPolicySignatureV2(vectors.post.policy + '=', vectors.post.signature, vectors.secret), 'SignatureDoesNotMatch');
    rejects(() => verifyPolicySignatureV2(vectors.post.policy, vectors.post.signature, 'other'), 'SignatureDoesNotMatch');
  });
});

describe('authenticateRequest: one call for SigV4 and SigV2', () => {
  const v = vectors.header[0]!;
  const input = { method: v.method, url: v.url, headers: { ...v.headers, authorization: v.authorization } };
  const base = { lookupSecret: opts('').lookupSecret, now: signedAt, resourcePath: v.resourcePath, defaultRegion: 'us-east-1' };
  test('SigV2 allowed: verified', () => {
    assert.equal(authenticateRequest(input, { ...base, allowSigV2: true }).accessKeyId, AK);
  });
  test('SigV2 refused: InvalidRequest as S3 answers in regions without SigV2', () => {
    rejects(() => authenticateRequest(input, { ...base, allowSigV2: false }), 'InvalidRequest', SIGV4_MESSAGES.unsupportedMechanism);
    const q = vectors.query[0]!;
    rejects(() => authenticateRequest({ method: q.method, url: q.url, headers: {} }, { ...base, allowSigV2: false }), 'InvalidRequest', SIGV4_MESSAGES.unsupportedMechanism);
  });
});
