/**
 * verifyRequest against the AWS S3 documentation examples (stored as data), their single-character tampers,
 * and each S3 error the verifier reports (code, status, message).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { S3Error } from '../../src/s3/errors.ts';
import {
  deriveSigningKey,
  formatAmzDate,
  hmacSha256,
  sha256Hex,
  stringToSign,
  uriEncode,
} from '../../src/sigv4/canonical.ts';
import { createUpstreamSigner } from '../../src/sigv4/sign.ts';
import {
  SIGV4_MESSAGES,
  canonicalRequestForTesting,
  classifyAuth,
  isUnsupportedAuthError,
  verifyRequest,
  type VerifyInput,
  type VerifyOptions,
} from '../../src/sigv4/verify.ts';

interface Vector {
  name: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  canonicalRequestSha256?: string;
  signature: string;
  presigned?: boolean;
  tamper: { signedHeader: string; query: [string, string] | null };
}
interface VectorFile {
  credentials: { accessKeyId: string; secretAccessKey: string };
  region: string;
  now: string;
  vectors: Vector[];
}

const file = JSON.parse(
  readFileSync(new URL('../vectors/sigv4-aws-s3-examples.json', import.meta.url), 'utf8'),
) as VectorFile;
const AWS_NOW = new Date(file.now);
const awsLookup = (ak: string) => (ak === file.credentials.accessKeyId ? file.credentials.secretAccessKey : undefined);

/** Assert `fn` throws an S3Error with this code/status (and message when given); return it. */
function expectS3Error(fn: () => unknown, code: string, status: number, message?: string): S3Error {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof S3Error, `expected S3Error ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.status, status);
  if (message !== undefined) assert.equal(caught.message, message);
  return caught;
}

function flipLast(s: string): string {
  const last = s.at(-1) ?? 'a';
  return s.slice(0, -1) + (last === 'x' ? 'y' : last === '0' ? '1' : /[0-9a-f]/.test(last) ? (last === 'f' ? 'e' : 'f') : 'x');
}

describe('AWS S3 SigV4 documentation examples', () => {
  for (const v of file.vectors) {
    const input: VerifyInput = { method: v.method, url: v.url, headers: v.headers };
    const verify = (i: VerifyInput, extra: Partial<VerifyOptions> = {}) =>
      verifyRequest(i, { lookupSecret: awsLookup, now: AWS_NOW, ...extra });

    test(`${v.name}: accepted`, () => {
      const r = verify(input, { region: file.region });
      assert.equal(r.signature, v.signature);
      assert.equal(r.accessKeyId, file.credentials.accessKeyId);
      assert.equal(r.region, 'us-east-1');
      assert.equal(r.scope, '20130524/us-east-1/s3/aws4_request');
      assert.equal(r.amzDate, '20130524T000000Z');
      assert.equal(r.date.toISOString(), '2013-05-24T00:00:00.000Z');
      assert.equal(r.presigned, v.presigned === true);
      assert.equal(r.payloadHash, v.presigned === true ? 'UNSIGNED-PAYLOAD' : v.headers['x-amz-content-sha256']);
      assert.equal(
        r.signingKey.toString('hex'),
        deriveSigningKey(file.credentials.secretAccessKey, '20130524', 'us-east-1', 's3').toString('hex'),
      );
      if (v.body !== undefined) assert.equal(sha256Hex(v.body), v.headers['x-amz-content-sha256']);
    });

    if (v.canonicalRequestSha256 !== undefined) {
      const want = v.canonicalRequestSha256;
      test(`${v.name}: canonical request hash is the documented one`, () => {
        assert.equal(sha256Hex(canonicalRequestForTesting(input)), want);
      });
    }

    test(`${v.name}: method changed by one character → SignatureDoesNotMatch`, () => {
      expectS3Error(() => verify({ ...input, method: flipLast(v.method) }), 'SignatureDoesNotMatch', 403);
    });

    test(`${v.name}: path changed by one character → SignatureDoesNotMatch`, () => {
      const q = v.url.indexOf('?');
      const path = q < 0 ? v.url : v.url.slice(0, q);
      const rest = q < 0 ? '' : v.url.slice(q);
      const tampered = path === '/' ? '/x' : flipLast(path);
      expectS3Error(() => verify({ ...input, url: tampered + rest }), 'SignatureDoesNotMatch', 403);
    });

    test(`${v.name}: a signed header changed by one character → SignatureDoesNotMatch`, () => {
      const name = v.tamper.signedHeader;
      const value = v.headers[name];
      assert.ok(value !== undefined);
      const headers = { ...v.headers, [name]: flipLast(value) };
      expectS3Error(() => verify({ ...input, headers }), 'SignatureDoesNotMatch', 403);
    });

    test(`${v.name}: query changed → SignatureDoesNotMatch`, () => {
      const url =
        v.tamper.query === null ? `${v.url}?x` : v.url.replace(v.tamper.query[0], v.tamper.query[1]);
      assert.notEqual(url, v.url);
      expectS3Error(() => verify({ ...input, url }), 'SignatureDoesNotMatch', 403);
    });

    test(`${v.name}: signature changed by one character → SignatureDoesNotMatch`, () => {
      const flipped = flipLast(v.signature);
      const headers = { ...v.headers };
      let url = v.url;
      if (v.presigned === true) url = v.url.replace(v.signature, flipped);
      else headers['Authorization'] = (headers['Authorization'] ?? '').replace(v.signature, flipped);
      const e = expectS3Error(
        () => verify({ ...input, url, headers }),
        'SignatureDoesNotMatch',
        403,
        SIGV4_MESSAGES.signatureMismatch,
      );
      assert.deepEqual(e.extra, {});
    });
  }

  test('equivalent encodings of the same target verify (S3 re-canonicalises)', () => {
    const [get, put, , list] = file.vectors as [Vector, Vector, Vector, Vector, Vector];
    const ok = (v: Vector, url: string) =>
      verifyRequest({ method: v.method, url, headers: v.headers }, { lookupSecret: awsLookup, now: AWS_NOW });
    ok(put, '/test%24file.text');
    ok(get, '/test%2Etxt');
    ok(get, '/test.txt?');
    ok(list, '/?prefix=J&max-keys=2');
    ok(list, '/?max-keys=2&prefix=%4A');
    ok(list, '/?max-keys=2&&prefix=J&');
  });

  test('header names in any case, commas without spaces in Authorization', () => {
    const v = file.vectors[0] as Vector;
    const lower = Object.fromEntries(Object.entries(v.headers).map(([k, val]) => [k.toLowerCase(), val]));
    verifyRequest({ method: v.method, url: v.url, headers: lower }, { lookupSecret: awsLookup, now: AWS_NOW });
    const spaced = { ...v.headers, Authorization: (v.headers['Authorization'] ?? '').replace(/,/g, ', ') };
    verifyRequest({ method: v.method, url: v.url, headers: spaced }, { lookupSecret: awsLookup, now: AWS_NOW });
  });
});

// ---------------------------------------------------------------------------------------------------------
// Error cases on requests we sign ourselves

const AK = 'AKIDPROXYTEST';
const SECRET = 'proxy/Secret+Key=0123456789abcdef';
const lookup = (ak: string) => (ak === AK ? SECRET : undefined);
const T = new Date('2026-11-22T15:17:18Z');
const HOST = 'proxy.local';
const signer = createUpstreamSigner({ accessKeyId: AK, secretAccessKey: SECRET, region: 'us-east-1' });

function targetOf(url: string): string {
  return url.slice(url.indexOf('/', url.indexOf('//') + 2));
}

async function signedInput(
  over: { method?: string; path?: string; query?: Record<string, string>; headers?: Record<string, string> } = {},
  signingDate = T,
): Promise<{ method: string; url: string; headers: Record<string, string> }> {
  const method = over.method ?? 'PUT';
  const s = await signer.sign(
    {
      method,
      protocol: 'https:',
      hostname: HOST,
      port: 8443,
      path: over.path ?? '/bkt/some%20key',
      query: over.query ?? {},
      headers: over.headers ?? { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'content-length': '5' },
    },
    { signingDate },
  );
  return { method, url: targetOf(s.url), headers: s.headers };
}

const smithy = new SignatureV4({
  credentials: { accessKeyId: AK, secretAccessKey: SECRET },
  region: 'us-east-1',
  service: 's3',
  sha256: Hash.bind(null, 'sha256'),
  uriEscapePath: false,
  applyChecksum: false,
});

async function presignedInput(
  expiresIn: number,
  headers: Record<string, string> = {},
  signingDate = T,
): Promise<{ method: string; url: string; headers: Record<string, string> }> {
  const req = new HttpRequest({
    method: 'GET',
    protocol: 'https:',
    hostname: HOST,
    port: 8443,
    path: '/bkt/obj',
    query: { 'x-id': 'GetObject' },
    // As @aws-sdk/s3-request-presigner does: the payload mode goes into the query as X-Amz-Content-Sha256.
    headers: { host: `${HOST}:8443`, 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD', ...headers },
  });
  const p = await smithy.presign(req, { signingDate, expiresIn, unhoistableHeaders: new Set(Object.keys(headers)) });
  const qs = Object.entries(p.query ?? {})
    .map(([k, v]) => `${uriEncode(k)}=${uriEncode(String(v))}`)
    .join('&');
  return { method: 'GET', url: `/bkt/obj?${qs}`, headers: { host: `${HOST}:8443`, ...headers } };
}

/** Re-sign a hand-made header-auth request with our own canonicalisation (for cases no SDK produces). */
function resign(input: VerifyInput, amzDate: string): VerifyInput {
  const cr = canonicalRequestForTesting(input);
  const scope = `${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`;
  const sig = hmacSha256(deriveSigningKey(SECRET, amzDate.slice(0, 8), 'us-east-1', 's3'), stringToSign(amzDate, scope, cr));
  const headers = { ...input.headers };
  headers['authorization'] = String(headers['authorization']).replace(/Signature=[0-9a-f]*/, `Signature=${sig.toString('hex')}`);
  return { ...input, headers };
}

function assertNoSecrets(e: S3Error, ...secrets: string[]) {
  const text = e.message + JSON.stringify(e.extra) + JSON.stringify(e.headers);
  for (const s of [SECRET, ...secrets]) assert.ok(!text.includes(s), `error leaks ${s}`);
}

describe('verifyRequest errors', () => {
  test('a request signed by sign.ts verifies, payload hash and signed headers reported', async () => {
    const i = await signedInput();
    const r = verifyRequest(i, { lookupSecret: lookup, now: T, region: 'us-east-1' });
    assert.equal(r.accessKeyId, AK);
    assert.equal(r.payloadHash, 'UNSIGNED-PAYLOAD');
    assert.deepEqual(r.signedHeaders, ['content-length', 'host', 'x-amz-content-sha256', 'x-amz-date']);
    assert.equal(r.presigned, false);
  });

  test('clock skew over 15 minutes → RequestTimeTooSkewed 403 (both directions); 14 minutes is fine', async () => {
    const i = await signedInput();
    const at = (ms: number) => new Date(T.getTime() + ms);
    verifyRequest(i, { lookupSecret: lookup, now: at(14 * 60_000) });
    verifyRequest(i, { lookupSecret: lookup, now: at(-14 * 60_000) });
    for (const skew of [16 * 60_000, -16 * 60_000]) {
      const e = expectS3Error(
        () => verifyRequest(i, { lookupSecret: lookup, now: at(skew) }),
        'RequestTimeTooSkewed',
        403,
        'The difference between the request time and the current time is too large.',
      );
      assert.equal(e.extra['RequestTime'], formatAmzDate(T));
      assert.equal(e.extra['MaxAllowedSkewMilliseconds'], '900000');
      assert.match(e.extra['ServerTime'] ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    expectS3Error(() => verifyRequest(i, { lookupSecret: lookup, now: at(61_000), maxSkewMs: 60_000 }), 'RequestTimeTooSkewed', 403);
  });

  test('presigned: valid until X-Amz-Date + X-Amz-Expires, then AccessDenied "Request has expired"', async () => {
    const i = await presignedInput(60);
    const r = verifyRequest(i, { lookupSecret: lookup, now: new Date(T.getTime() + 60_000) });
    assert.equal(r.presigned, true);
    assert.equal(r.payloadHash, 'UNSIGNED-PAYLOAD');
    const e = expectS3Error(
      () => verifyRequest(i, { lookupSecret: lookup, now: new Date(T.getTime() + 61_000) }),
      'AccessDenied',
      403,
      'Request has expired',
    );
    assert.equal(e.extra['X-Amz-Expires'], '60');
    assert.equal(e.extra['Expires'], '2026-11-22T15:18:18Z');
  });

  test('presigned: far in the future → AccessDenied "Request is not valid yet"', async () => {
    const i = await presignedInput(3600);
    expectS3Error(
      () => verifyRequest(i, { lookupSecret: lookup, now: new Date(T.getTime() - 16 * 60_000) }),
      'AccessDenied',
      403,
      'Request is not valid yet',
    );
    verifyRequest(i, { lookupSecret: lookup, now: new Date(T.getTime() - 60_000) });
  });

  test('presigned: X-Amz-Expires 604800 accepted, 604801 → AuthorizationQueryParametersError 400', async () => {
    const i = await presignedInput(604800);
    verifyRequest(i, { lookupSecret: lookup, now: new Date(T.getTime() + 604800_000) });
    const over = { ...i, url: i.url.replace('X-Amz-Expires=604800', 'X-Amz-Expires=604801') };
    expectS3Error(
      () => verifyRequest(over, { lookupSecret: lookup, now: T }),
      'AuthorizationQueryParametersError',
      400,
      SIGV4_MESSAGES.expiresTooLarge,
    );
    const neg = { ...i, url: i.url.replace('X-Amz-Expires=604800', 'X-Amz-Expires=-1') };
    expectS3Error(() => verifyRequest(neg, { lookupSecret: lookup, now: T }), 'AuthorizationQueryParametersError', 400);
    const nan = { ...i, url: i.url.replace('X-Amz-Expires=604800', 'X-Amz-Expires=soon') };
    expectS3Error(() => verifyRequest(nan, { lookupSecret: lookup, now: T }), 'AuthorizationQueryParametersError', 400);
  });

  test('presigned: missing parameter → AuthorizationQueryParametersError 400', async () => {
    const i = await presignedInput(60);
    const url = i.url.replace(/&?X-Amz-SignedHeaders=[^&]*/, '');
    expectS3Error(
      () => verifyRequest({ ...i, url }, { lookupSecret: lookup, now: T }),
      'AuthorizationQueryParametersError',
      400,
      SIGV4_MESSAGES.queryRequired,
    );
  });

  test('presigned with signed SSE-C headers (sdkv3/boto3 s3v4 shape) verifies; headers missing → mismatch', async () => {
    const ssec = {
      'x-amz-server-side-encryption-customer-algorithm': 'AES256',
      'x-amz-server-side-encryption-customer-key': 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
      'x-amz-server-side-encryption-customer-key-md5': 'hRasmdxgYDKV3nvbahU1MA==',
    };
    const i = await presignedInput(900, ssec);
    assert.match(i.url, /X-Amz-SignedHeaders=host%3Bx-amz-server-side-encryption-customer-algorithm%3B/);
    const r = verifyRequest(i, { lookupSecret: lookup, now: T });
    assert.equal(r.signedHeaders.length, 4);
    const e = expectS3Error(
      () => verifyRequest({ ...i, headers: { host: `${HOST}:8443` } }, { lookupSecret: lookup, now: T }),
      'SignatureDoesNotMatch',
      403,
    );
    assertNoSecrets(e, ssec['x-amz-server-side-encryption-customer-key']);
  });

  test('unknown access key → InvalidAccessKeyId 403', async () => {
    const i = await signedInput();
    expectS3Error(
      () => verifyRequest(i, { lookupSecret: () => undefined, now: T }),
      'InvalidAccessKeyId',
      403,
      'The AWS Access Key Id you provided does not exist in our records.',
    );
  });

  test('wrong region → AuthorizationHeaderMalformed 400 with S3 message and Region', async () => {
    const i = await signedInput();
    const e = expectS3Error(
      () => verifyRequest(i, { lookupSecret: lookup, now: T, region: 'eu-west-1' }),
      'AuthorizationHeaderMalformed',
      400,
      "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'",
    );
    assert.equal(e.extra['Region'], 'eu-west-1');
    const p = await presignedInput(60);
    expectS3Error(
      () => verifyRequest(p, { lookupSecret: lookup, now: T, region: 'eu-west-1' }),
      'AuthorizationQueryParametersError',
      400,
      "Error parsing the X-Amz-Credential parameter; the region 'us-east-1' is wrong; expecting 'eu-west-1'",
    );
  });

  test('credential scope date differs from x-amz-date → AuthorizationHeaderMalformed 400', async () => {
    const i = await signedInput();
    const headers = { ...i.headers, authorization: (i.headers['authorization'] ?? '').replace('/20261122/', '/20261121/') };
    expectS3Error(
      () => verifyRequest({ ...i, headers }, { lookupSecret: lookup, now: T }),
      'AuthorizationHeaderMalformed',
      400,
      SIGV4_MESSAGES.headerCredentialDate,
    );
  });

  test('wrong service or terminator in the scope → AuthorizationHeaderMalformed 400', async () => {
    const i = await signedInput();
    for (const [from, to] of [
      ['/s3/', '/iam/'],
      ['aws4_request', 'aws4_reqest'],
    ] as const) {
      const headers = { ...i.headers, authorization: (i.headers['authorization'] ?? '').replace(from, to) };
      expectS3Error(() => verifyRequest({ ...i, headers }, { lookupSecret: lookup, now: T }), 'AuthorizationHeaderMalformed', 400);
    }
  });

  test('missing x-amz-content-sha256 → InvalidRequest 400; bad value → InvalidArgument 400', async () => {
    const i = await signedInput();
    const { ['x-amz-content-sha256']: _gone, ...rest } = i.headers;
    expectS3Error(
      () => verifyRequest({ ...i, headers: rest }, { lookupSecret: lookup, now: T }),
      'InvalidRequest',
      400,
      'Missing required header for this request: x-amz-content-sha256',
    );
    for (const bad of ['GIBBERISH', 'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855', 'abc']) {
      const e = expectS3Error(
        () => verifyRequest({ ...i, headers: { ...i.headers, 'x-amz-content-sha256': bad } }, { lookupSecret: lookup, now: T }),
        'InvalidArgument',
        400,
        SIGV4_MESSAGES.invalidContentSha256,
      );
      assert.equal(e.extra['ArgumentName'], 'x-amz-content-sha256');
    }
  });

  test('every accepted payload mode verifies and is reported', async () => {
    for (const mode of [
      'UNSIGNED-PAYLOAD',
      'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
      'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
      sha256Hex('hello'),
    ]) {
      const i = await signedInput({ headers: { 'x-amz-content-sha256': mode } });
      assert.equal(verifyRequest(i, { lookupSecret: lookup, now: T }).payloadHash, mode);
    }
  });

  test('SigV2 (header and query) → InvalidRequest 400 "not supported", recognisable', () => {
    const v2header = { method: 'GET', url: '/bkt/obj', headers: { host: HOST, authorization: 'AWS AKIDPROXYTEST:c2lnbmF0dXJl' } };
    const v2query = {
      method: 'GET',
      url: '/capbkt/boto/small-str?AWSAccessKeyId=AKIDCAPTURETEST&Signature=w6m9vqtvNX%2BeX8eBWnFyEQv3H7c%3D&Expires=1795361543',
      headers: { host: HOST },
    };
    assert.equal(classifyAuth(v2header), 'header-v2');
    assert.equal(classifyAuth(v2query), 'query-v2');
    for (const i of [v2header, v2query]) {
      let caught: unknown;
      try {
        verifyRequest(i, { lookupSecret: lookup, now: T });
      } catch (e) {
        caught = e;
      }
      assert.ok(isUnsupportedAuthError(caught));
      expectS3Error(
        () => verifyRequest(i, { lookupSecret: lookup, now: T }),
        'InvalidRequest',
        400,
        'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.',
      );
    }
    const v4a = { method: 'GET', url: '/b/o', headers: { host: HOST, authorization: 'AWS4-ECDSA-P256-SHA256 Credential=x' } };
    assert.ok(isUnsupportedAuthError((() => { try { verifyRequest(v4a, { lookupSecret: lookup, now: T }); } catch (e) { return e; } return undefined; })()));
  });

  test('malformed Authorization → AuthorizationHeaderMalformed 400; unknown scheme → InvalidArgument 400', async () => {
    const i = await signedInput();
    const auth = i.headers['authorization'] ?? '';
    const cases = [
      auth.replace(/,\s*Signature=[0-9a-f]+/, ''),
      auth.replace(/SignedHeaders=[^,]+,\s*/, ''),
      auth.replace('Credential=', 'Credentials='),
      auth.replace(/Credential=[^,]+/, 'Credential=AKIDPROXYTEST/20261122/us-east-1/s3'),
      auth.replace(/Credential=[^,]+/, 'Credential=AKIDPROXYTEST/2026-11-22/us-east-1/s3/aws4_request'),
      auth + ', Signature=00',
      'AWS4-HMAC-SHA256',
      'AWS4-HMAC-SHA256 garbage',
    ];
    for (const bad of cases) {
      const e = expectS3Error(
        () => verifyRequest({ ...i, headers: { ...i.headers, authorization: bad } }, { lookupSecret: lookup, now: T }),
        'AuthorizationHeaderMalformed',
        400,
      );
      assert.match(e.message, /^The authorization header is malformed; /);
    }
    expectS3Error(
      () => verifyRequest({ ...i, headers: { ...i.headers, authorization: 'Bearer abc' } }, { lookupSecret: lookup, now: T }),
      'InvalidArgument',
      400,
      'Unsupported Authorization Type',
    );
  });

  test('no authentication at all → AccessDenied 403 "Access Denied"', () => {
    const i = { method: 'GET', url: '/bkt/obj', headers: { host: HOST } };
    assert.equal(classifyAuth(i), 'none');
    expectS3Error(() => verifyRequest(i, { lookupSecret: lookup, now: T }), 'AccessDenied', 403, 'Access Denied');
  });

  test('Authorization header and presigned query together → InvalidArgument 400', async () => {
    const p = await presignedInput(60);
    const i = await signedInput();
    const both = { ...p, headers: { ...p.headers, authorization: i.headers['authorization'] ?? '' } };
    assert.equal(classifyAuth(both), 'multiple');
    expectS3Error(() => verifyRequest(both, { lookupSecret: lookup, now: T }), 'InvalidArgument', 400, SIGV4_MESSAGES.onlyOneMechanism);
  });

  test('missing or invalid date → AccessDenied 403', async () => {
    const i = await signedInput();
    const { ['x-amz-date']: _d, ...noDate } = i.headers;
    expectS3Error(() => verifyRequest({ ...i, headers: noDate }, { lookupSecret: lookup, now: T }), 'AccessDenied', 403, SIGV4_MESSAGES.needDate);
    expectS3Error(
      () => verifyRequest({ ...i, headers: { ...i.headers, 'x-amz-date': '2026-11-22T15:17:18Z' } }, { lookupSecret: lookup, now: T }),
      'AccessDenied',
      403,
      SIGV4_MESSAGES.needDate,
    );
  });

  test('the Date header is used when x-amz-date is absent', () => {
    const input: VerifyInput = {
      method: 'GET',
      url: '/bkt/obj',
      headers: {
        host: HOST,
        date: 'Sun, 22 Nov 2026 15:17:18 GMT',
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
        authorization: `AWS4-HMAC-SHA256 Credential=${AK}/20261122/us-east-1/s3/aws4_request, SignedHeaders=date;host;x-amz-content-sha256, Signature=0`,
      },
    };
    const signed = resign(input, '20261122T151718Z');
    const r = verifyRequest(signed, { lookupSecret: lookup, now: T });
    assert.equal(r.amzDate, '20261122T151718Z');
    expectS3Error(() => verifyRequest(signed, { lookupSecret: lookup, now: new Date(T.getTime() + 3600_000) }), 'RequestTimeTooSkewed', 403);
  });

  test('host not signed → AccessDenied 403 with HeadersNotSigned', async () => {
    const req = new HttpRequest({
      method: 'GET',
      protocol: 'https:',
      hostname: HOST,
      path: '/bkt/obj',
      headers: { host: HOST, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
    });
    const s = await smithy.sign(req, { signingDate: T, unsignableHeaders: new Set(['host']) });
    assert.doesNotMatch(String(s.headers['authorization']), /host/);
    const e = expectS3Error(
      () => verifyRequest({ method: 'GET', url: '/bkt/obj', headers: s.headers }, { lookupSecret: lookup, now: T }),
      'AccessDenied',
      403,
      'There were headers present in the request which were not signed',
    );
    assert.equal(e.extra['HeadersNotSigned'], 'host');
  });

  test('an unsigned x-amz-* header → AccessDenied 403 (header auth and presigned)', async () => {
    const i = await signedInput();
    const e = expectS3Error(
      () =>
        verifyRequest(
          { ...i, headers: { ...i.headers, 'x-amz-copy-source': '/other/secret-object', 'x-amz-meta-a': '1' } },
          { lookupSecret: lookup, now: T },
        ),
      'AccessDenied',
      403,
    );
    assert.equal(e.extra['HeadersNotSigned'], 'x-amz-copy-source, x-amz-meta-a');
    // x-amzn-* is not x-amz-*; an unsigned user-agent is fine.
    verifyRequest({ ...i, headers: { ...i.headers, 'x-amzn-trace-id': 'Root=1', 'user-agent': 'x' } }, { lookupSecret: lookup, now: T });

    const p = await presignedInput(60);
    expectS3Error(
      () => verifyRequest({ ...p, headers: { ...p.headers, 'x-amz-copy-source': '/other/obj' } }, { lookupSecret: lookup, now: T }),
      'AccessDenied',
      403,
    );
    // An unsigned x-amz-content-sha256 on a presigned request may only repeat the signed payload mode.
    verifyRequest({ ...p, headers: { ...p.headers, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }, { lookupSecret: lookup, now: T });
    expectS3Error(
      () =>
        verifyRequest(
          { ...p, headers: { ...p.headers, 'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' } },
          { lookupSecret: lookup, now: T },
        ),
      'AccessDenied',
      403,
    );
  });

  test('a signed header absent from the request canonicalises as empty (S3 behaviour)', () => {
    const base: VerifyInput = {
      method: 'PUT',
      url: '/bkt/obj',
      headers: {
        host: HOST,
        'x-amz-date': '20261122T151718Z',
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
        authorization: `AWS4-HMAC-SHA256 Credential=${AK}/20261122/us-east-1/s3/aws4_request, SignedHeaders=host;transfer-encoding;x-amz-content-sha256;x-amz-date, Signature=0`,
      },
    };
    assert.match(canonicalRequestForTesting(base), /\ntransfer-encoding:\n/);
    verifyRequest(resign(base, '20261122T151718Z'), { lookupSecret: lookup, now: T });
  });

  test('repeated headers (headersDistinct) are joined with "," after trimming each value', () => {
    const base: VerifyInput = {
      method: 'GET',
      url: '/bkt/obj',
      headers: {
        host: [HOST],
        'x-amz-date': ['20261122T151718Z'],
        'x-amz-content-sha256': ['UNSIGNED-PAYLOAD'],
        'x-amz-meta-multi': ['  a   b ', 'c\t\td'],
        authorization: [
          `AWS4-HMAC-SHA256 Credential=${AK}/20261122/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-multi, Signature=0`,
        ],
      },
    };
    assert.match(canonicalRequestForTesting(base), /\nx-amz-meta-multi:a b,c d\n/);
    verifyRequest(resign(base, '20261122T151718Z'), { lookupSecret: lookup, now: T });
  });

  test('no error message or extra carries the secret, the signature or a signed header value', async () => {
    const sseKey = 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';
    const i = await signedInput({
      headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-server-side-encryption-customer-key': sseKey },
    });
    const sig = /Signature=([0-9a-f]+)/.exec(i.headers['authorization'] ?? '')?.[1] ?? '';
    const variants: Array<[VerifyInput, Partial<VerifyOptions>]> = [
      [{ ...i, method: 'POST' }, {}],
      [i, { lookupSecret: () => undefined }],
      [i, { now: new Date(T.getTime() + 3600_000) }],
      [i, { region: 'eu-west-1' }],
      [{ ...i, headers: { ...i.headers, 'x-amz-meta-x': sseKey } }, {}],
    ];
    for (const [input, o] of variants) {
      try {
        verifyRequest(input, { lookupSecret: lookup, now: T, ...o });
        assert.fail('expected an error');
      } catch (e) {
        assert.ok(e instanceof S3Error);
        assertNoSecrets(e, sig, sseKey);
      }
    }
  });
});
