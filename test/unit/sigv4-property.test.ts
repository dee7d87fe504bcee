/**
 * Properties: whatever @smithy/signature-v4 (the AWS SDK's signer) or sign.ts signs, verifyRequest accepts
 * when given the URL exactly as emitted; any tamper of method, path, query or a signed header is rejected.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { S3Error } from '../../src/s3/errors.ts';
import { uriEncode } from '../../src/sigv4/canonical.ts';
import { createUpstreamSigner } from '../../src/sigv4/sign.ts';
import { verifyRequest, type VerifyInput } from '../../src/sigv4/verify.ts';

const AK = 'AKIDPROPERTY';
const SECRET = 'prop/Secret+Key';
const lookup = (ak: string) => (ak === AK ? SECRET : undefined);
const HOST = 'proxy.example:8443';
const RUNS = 200;

/** Characters that break naive signers: reserved, `+`, `%`, spaces, non-ASCII, astral. */
const nasty = fc.constantFrom(' ', '+', '=', '~', '%', '&', '?', '#', '!', "'", '(', ')', '*', ';', ':', '@', ',', '$', 'é', '€', '😀', '\u00a0', '-', '_', '.', 'a', 'Z', '0');
const text = (max: number) => fc.oneof(fc.string({ unit: nasty, maxLength: max }), fc.string({ unit: 'grapheme', maxLength: max }));
/** An S3 key: may contain `/`, so empty segments and leading/trailing slashes occur too. */
const keyArb = fc.array(text(8), { minLength: 1, maxLength: 4 }).map((parts) => parts.join('/'));
const queryArb = fc.array(fc.tuple(text(6).filter((n) => n.length > 0 && n !== '__proto__'), text(6), fc.boolean()), {
  maxLength: 5,
});
const headerValueArb = fc.string({ unit: fc.constantFrom('a', 'b', ' ', '\t', '-', '=', '/'), maxLength: 12 });
const dateArb = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T23:59:59Z'), noInvalidDate: true }).map(
  (d) => new Date(Math.floor(d.getTime() / 1000) * 1000),
);

const smithy = new SignatureV4({
  credentials: { accessKeyId: AK, secretAccessKey: SECRET },
  region: 'us-east-1',
  service: 's3',
  sha256: Hash.bind(null, 'sha256'),
  uriEscapePath: false,
  applyChecksum: false,
});

/** Group [name, value] pairs into the SDK's query object (repeated names become arrays). */
function toQueryObject(pairs: ReadonlyArray<readonly [string, string, boolean]>): Record<string, string | string[]> {
  const q: Record<string, string | string[]> = {};
  for (const [n, v] of pairs) {
    const prev = Object.hasOwn(q, n) ? q[n] : undefined;
    q[n] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return q;
}

/** The wire query in the pairs' own (unsorted) order; an empty value sometimes as a bare name. */
function wireQuery(pairs: ReadonlyArray<readonly [string, string, boolean]>): string {
  return pairs.map(([n, v, bare]) => (v === '' && bare ? uriEncode(n) : `${uriEncode(n)}=${uriEncode(v)}`)).join('&');
}

type Tamper = 'method' | 'path' | 'query' | 'header' | 'none';
const tamperArb = fc.constantFrom<Tamper>('method', 'path', 'query', 'header');

function tampered(i: VerifyInput, t: Tamper): VerifyInput {
  switch (t) {
    case 'method':
      return { ...i, method: i.method === 'PUT' ? 'POST' : 'PUT' };
    case 'path': {
      const q = i.url.indexOf('?');
      return q < 0 ? { ...i, url: `${i.url}x` } : { ...i, url: `${i.url.slice(0, q)}x${i.url.slice(q)}` };
    }
    case 'query':
      return { ...i, url: i.url.includes('?') ? `${i.url}&zz=1` : `${i.url}?zz=1` };
    case 'header':
      return { ...i, headers: { ...i.headers, 'x-amz-meta-a': `${String(i.headers['x-amz-meta-a'])}x` } };
    case 'none':
      return i;
  }
}

function rejects(i: VerifyInput, now: Date): void {
  assert.throws(
    () => verifyRequest(i, { lookupSecret: lookup, now }),
    (e: unknown) => e instanceof S3Error && e.code === 'SignatureDoesNotMatch' && e.status === 403,
  );
}

describe('property: SDK signer ↔ verifyRequest', () => {
  test('requests signed by @smithy/signature-v4 verify; tampered ones do not', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'PUT', 'HEAD', 'DELETE', 'POST'),
        keyArb,
        queryArb,
        headerValueArb,
        dateArb,
        fc.constantFrom('UNSIGNED-PAYLOAD', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'),
        tamperArb,
        async (method, key, pairs, meta, date, payload, t) => {
          // As the S3 serializer does: each key segment RFC 3986 encoded, '/' kept.
          const path = `/bkt/${key.split('/').map((s) => uriEncode(s)).join('/')}`;
          const req = new HttpRequest({
            method,
            protocol: 'https:',
            hostname: 'proxy.example',
            port: 8443,
            path,
            query: toQueryObject(pairs),
            headers: { host: HOST, 'x-amz-content-sha256': payload, 'x-amz-meta-a': meta, 'user-agent': 'prop' },
          });
          const s = await smithy.sign(req, { signingDate: date });
          const qs = wireQuery(pairs);
          const input: VerifyInput = { method, url: qs === '' ? path : `${path}?${qs}`, headers: s.headers };
          const r = verifyRequest(input, { lookupSecret: lookup, now: date });
          assert.equal(`Signature=${r.signature}`, /Signature=[0-9a-f]+$/.exec(String(s.headers['authorization']))?.[0]);
          assert.equal(r.payloadHash, payload);
          rejects(tampered(input, t), date);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('presigned URLs from @smithy/signature-v4 verify; tampered ones do not', async () => {
    await fc.assert(
      fc.asyncProperty(keyArb, queryArb, headerValueArb, dateArb, tamperArb, async (key, pairs, meta, date, t) => {
        const path = `/bkt/${key.split('/').map((s) => uriEncode(s)).join('/')}`;
        const req = new HttpRequest({
          method: 'GET',
          protocol: 'https:',
          hostname: 'proxy.example',
          port: 8443,
          path,
          query: toQueryObject(pairs.filter(([n]) => !n.toLowerCase().startsWith('x-amz-'))),
          headers: { host: HOST, 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD', 'x-amz-meta-a': meta },
        });
        const p = await smithy.presign(req, {
          signingDate: date,
          expiresIn: 3600,
          unhoistableHeaders: new Set(['x-amz-meta-a']),
        });
        const qs = Object.entries(p.query ?? {})
          .flatMap(([n, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${uriEncode(n)}=${uriEncode(String(x))}`))
          .join('&');
        const input: VerifyInput = { method: 'GET', url: `${path}?${qs}`, headers: { host: HOST, 'x-amz-meta-a': meta } };
        const r = verifyRequest(input, { lookupSecret: lookup, now: date });
        assert.equal(r.presigned, true);
        assert.deepEqual(r.signedHeaders, ['host', 'x-amz-meta-a']);
        rejects(tampered(input, t), date);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('property: sign.ts ↔ verifyRequest', () => {
  const signer = createUpstreamSigner({ accessKeyId: AK, secretAccessKey: SECRET, region: 'us-east-1' });

  test('requests re-signed by sign.ts verify at the URL emitted; tampered ones do not', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'PUT', 'POST'),
        keyArb,
        fc.boolean(),
        queryArb,
        headerValueArb,
        dateArb,
        tamperArb,
        async (method, key, rawPlus, pairs, meta, date, t) => {
          // Paths as callers build them: encoded segments; sometimes a literal '+' left raw (sent as %2B).
          const enc = (s: string) => (rawPlus ? uriEncode(s).replace(/%2B/g, '+') : uriEncode(s));
          const s = await signer.sign(
            {
              method,
              protocol: 'https:',
              hostname: 'proxy.example',
              port: 8443,
              path: `/bkt/${key.split('/').map(enc).join('/')}`,
              query: toQueryObject(pairs),
              headers: {
                'Content-Length': '3',
                'content-type': 'application/octet-stream',
                'content-md5': 'rL0Y20zC+Fzt72VPzMSk2A==',
                'x-amz-meta-a': meta,
                'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
              },
            },
            { signingDate: date },
          );
          assert.ok(s.url.startsWith('https://proxy.example:8443/bkt/'));
          assert.ok(!s.url.includes('+'), 'a + on the wire would mean a space to S3');
          const input: VerifyInput = { method, url: s.url.slice('https://proxy.example:8443'.length), headers: s.headers };
          const r = verifyRequest(input, { lookupSecret: lookup, now: date });
          assert.deepEqual(r.signedHeaders, [
            'content-length',
            'content-md5',
            'content-type',
            'host',
            'x-amz-content-sha256',
            'x-amz-date',
            'x-amz-meta-a',
          ]);
          // The decoded key survives: what the upstream reads is what the caller meant.
          const wirePath = input.url.split('?')[0] ?? '';
          assert.equal(
            decodeURIComponent(wirePath.slice('/bkt/'.length)),
            key,
          );
          rejects(tampered(input, t), date);
        },
      ),
      { numRuns: RUNS },
    );
  });
});
