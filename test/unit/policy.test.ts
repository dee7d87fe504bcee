/**
 * Bucket policies with SSE-C conditions (policy/): what the store is given, the client's document recovered
 * byte for byte from it, and the proxy's evaluation of the SSE-C statements with AWS's semantics.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { CARRIER_SID, readStoredPolicy, splitPolicy, SSEC_CONDITION_KEY } from '../../src/policy/document.ts';
import { deniedBy, wildcardMatch, type PolicyRequest } from '../../src/policy/evaluate.ts';
import { policyChecks } from '../../src/policy/actions.ts';
import { POLICY_TTL_MS, PolicyCache } from '../../src/policy/stored.ts';
import { classify } from '../../src/s3/operation.ts';
import { S3Error } from '../../src/s3/errors.ts';

const bucket = 'docs-bucket';
/** AWS's documented policy to require SSE-C on uploads, pretty-printed as the console shows it. */
const requireSsec = `{
    "Version": "2012-10-17",
    "Id": "PutObjectPolicy",
    "Statement": [
        {
            "Sid": "RequireSSECObjectUploads",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::${bucket}/*",
            "Condition": {
                "Null": {
                    "s3:x-amz-server-side-encryption-customer-algorithm": "true"
                }
            }
        },
        {
            "Sid": "NoDeletes",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:DeleteObject",
            "Resource": "arn:aws:s3:::${bucket}/keep/*"
        }
    ]
}
`;

const statements = (text: string) => readStoredPolicy(splitPolicy(text, bucket).stored).statements;
const put = (over: Partial<PolicyRequest> = {}): PolicyRequest => ({
  action: 's3:PutObject',
  resource: `arn:aws:s3:::${bucket}/a/b.txt`,
  anonymous: false,
  ssecAlgorithm: undefined,
  ...over,
});
const policy = (...stmts: object[]) => JSON.stringify({ Version: '2012-10-17', Statement: stmts });
const deny = (condition: object, over: object = {}) => ({ Effect: 'Deny', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${bucket}/*`, Condition: condition, ...over });
const refusal = (code: string) => (e: unknown) => e instanceof S3Error && e.code === code;

test("AWS's require-SSE-C policy: the store gets no SSE-C key, the client's bytes come back exactly", () => {
  const { stored } = splitPolicy(requireSsec, bucket);
  assert.ok(!stored.toLowerCase().includes(SSEC_CONDITION_KEY), stored);
  const doc = JSON.parse(stored);
  assert.equal(doc.Id, 'PutObjectPolicy');
  assert.deepEqual(doc.Statement.map((s: { Sid: string }) => s.Sid), ['NoDeletes', CARRIER_SID]);
  const carrier = doc.Statement[1];
  assert.deepEqual([carrier.Effect, carrier.Principal, carrier.Action], ['Deny', '*', 's3:GetObject']);
  for (const r of carrier.Resource) assert.match(r, new RegExp(`^arn:aws:s3:::${bucket}/\\.ssec-proxy-policy/v1/\\d+/[A-Za-z0-9_-]+$`));
  assert.equal(readStoredPolicy(stored).original, requireSsec);
});

test('a policy without SSE-C keys is stored exactly as given, and read back as such', () => {
  const text = '{ "Version": "2012-10-17", "Statement": [ { "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/*" } ] }';
  assert.equal(splitPolicy(text, bucket).stored, text);
  assert.deepEqual(readStoredPolicy(text), { original: text, statements: [] });
});

test('a large, incompressible document spans carrier resources under 1024 bytes each, in any order the store returns them', () => {
  const stmts = Array.from({ length: 40 }, (_, i) => deny({ Null: { [SSEC_CONDITION_KEY]: 'true' } }, { Sid: `s${i}x${randomBytes(150).toString('hex')}` }));
  const text = policy(...stmts);
  assert.ok(Buffer.byteLength(text) > 15_000 && Buffer.byteLength(text) < 20_480);
  const doc = JSON.parse(splitPolicy(text, bucket).stored);
  const resources: string[] = doc.Statement.at(-1).Resource;
  assert.ok(resources.length > 10);
  for (const r of resources) assert.ok(Buffer.byteLength(r) < 1024, r);
  doc.Statement.at(-1).Resource = [...resources].reverse();
  assert.equal(readStoredPolicy(JSON.stringify(doc)).original, text);
  assert.equal(readStoredPolicy(JSON.stringify(doc)).statements.length, 40);
});

test('a one-chunk carrier normalized to a string (as AWS does with one-element lists) still decodes', () => {
  const doc = JSON.parse(splitPolicy(requireSsec, bucket).stored);
  doc.Statement[1].Resource = doc.Statement[1].Resource[0];
  assert.equal(readStoredPolicy(JSON.stringify(doc)).original, requireSsec);
});

test('a carrier edited in the store does not decode (the proxy then fails closed)', () => {
  const doc = JSON.parse(splitPolicy(requireSsec, bucket).stored);
  doc.Statement[1].Resource = [doc.Statement[1].Resource[0].replace(/\/v1\/0\/(.)/, (_m: string, c: string) => `/v1/0/${c === 'A' ? 'B' : 'A'}`)];
  assert.throws(() => readStoredPolicy(JSON.stringify(doc)));
  doc.Statement[1].Resource = [`arn:aws:s3:::${bucket}/.ssec-proxy-policy/v1/1/AAAA`];
  assert.throws(() => readStoredPolicy(JSON.stringify(doc)));
});

test('an Allow with SSE-C tests goes to the store without them, its other conditions kept', () => {
  const text = policy({
    Effect: 'Allow',
    Principal: { AWS: 'arn:aws:iam:::user/app' },
    Action: 's3:PutObject',
    Resource: `arn:aws:s3:::${bucket}/*`,
    Condition: { StringEquals: { [SSEC_CONDITION_KEY]: 'AES256', 's3:x-amz-acl': 'private' }, Null: { [SSEC_CONDITION_KEY]: 'false' } },
  });
  const stored = JSON.parse(splitPolicy(text, bucket).stored);
  assert.deepEqual(stored.Statement[0].Condition, { StringEquals: { 's3:x-amz-acl': 'private' } });
  assert.equal(stored.Statement[0].Effect, 'Allow');
});

test("refused documents: S3's MalformedPolicy, and NotImplemented for set operators on the SSE-C key", () => {
  assert.throws(() => splitPolicy('nope', bucket), refusal('MalformedPolicy'));
  assert.throws(() => splitPolicy('[]', bucket), refusal('MalformedPolicy'));
  assert.throws(() => splitPolicy('{"Version":"2012-10-17"}', bucket), refusal('MalformedPolicy'));
  const big = policy(...Array.from({ length: 120 }, (_, i) => ({ Sid: `s${i}`.padEnd(180, 'x'), Effect: 'Deny', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*' })));
  assert.throws(() => splitPolicy(big, bucket), refusal('MalformedPolicy'));
  assert.throws(() => splitPolicy(policy(deny({ Null: { [SSEC_CONDITION_KEY]: 'true' } }, { Sid: CARRIER_SID })), bucket), refusal('MalformedPolicy'));
  assert.throws(() => splitPolicy(policy(deny({ 'ForAnyValue:StringEquals': { [SSEC_CONDITION_KEY]: 'AES256' } })), bucket), refusal('NotImplemented'));
  assert.throws(() => splitPolicy(policy(deny({ NumericEquals: { [SSEC_CONDITION_KEY]: '1' } })), bucket), refusal('NotImplemented'));
  assert.throws(() => splitPolicy(policy(deny({ Null: { [SSEC_CONDITION_KEY]: 'true' } }, { Resource: undefined })), bucket), refusal('MalformedPolicy'));
});

test('require SSE-C (Null): uploads without the header are denied, with it allowed; other actions untouched', () => {
  const s = statements(requireSsec);
  assert.equal(s.length, 1);
  assert.ok(deniedBy(s, put()));
  assert.ok(deniedBy(s, put({ anonymous: true })));
  assert.equal(deniedBy(s, put({ ssecAlgorithm: 'AES256' })), undefined);
  assert.equal(deniedBy(s, put({ action: 's3:GetObject' })), undefined);
  assert.equal(deniedBy(s, put({ resource: 'arn:aws:s3:::other/a' })), undefined);
});

test('condition operators on the SSE-C key, with AWS semantics for an absent key and IfExists', () => {
  const cases: Array<[condition: object, value: string | undefined, denied: boolean]> = [
    [{ StringNotEquals: { [SSEC_CONDITION_KEY]: 'AES256' } }, undefined, true],
    [{ StringNotEquals: { [SSEC_CONDITION_KEY]: 'AES256' } }, 'AES256', false],
    [{ StringNotEquals: { [SSEC_CONDITION_KEY]: 'AES256' } }, 'aes256', true],
    [{ StringNotEqualsIgnoreCase: { [SSEC_CONDITION_KEY]: 'AES256' } }, 'aes256', false],
    [{ StringEquals: { [SSEC_CONDITION_KEY]: ['AES128', 'AES256'] } }, 'AES256', true],
    [{ StringEquals: { [SSEC_CONDITION_KEY]: 'AES256' } }, undefined, false],
    [{ StringEqualsIfExists: { [SSEC_CONDITION_KEY]: 'AES256' } }, undefined, true],
    [{ StringLike: { [SSEC_CONDITION_KEY]: 'AES*' } }, 'AES256', true],
    [{ StringLike: { [SSEC_CONDITION_KEY]: 'AES???' } }, 'AES2567', false],
    [{ StringNotLike: { [SSEC_CONDITION_KEY]: 'AES*' } }, undefined, true],
    [{ Null: { [SSEC_CONDITION_KEY]: false } }, 'AES256', true],
    [{ Null: { [SSEC_CONDITION_KEY]: 'false' } }, undefined, false],
    // Tests on other keys are taken as holding: the Deny stays a Deny (stricter than AWS when they would not).
    [{ Null: { [SSEC_CONDITION_KEY]: 'true' }, IpAddress: { 'aws:SourceIp': '10.0.0.0/8' } }, undefined, true],
    // Keys are case-insensitive.
    [{ Null: { 'S3:X-Amz-Server-Side-Encryption-Customer-Algorithm': 'true' } }, undefined, true],
  ];
  for (const [condition, value, denied] of cases) {
    const got = deniedBy(statements(policy(deny(condition))), put({ ssecAlgorithm: value }));
    assert.equal(got !== undefined, denied, `${JSON.stringify(condition)} with ${value}`);
  }
});

test('an Allow with an SSE-C condition denies what it would not allow, for the principals it may name', () => {
  const s = statements(policy({ Effect: 'Allow', Principal: { AWS: ['arn:aws:iam::123456789012:user/app'] }, Action: 's3:PutObject', Resource: `arn:aws:s3:::${bucket}/*`, Condition: { StringEquals: { [SSEC_CONDITION_KEY]: 'AES256' } } }));
  assert.ok(deniedBy(s, put()));
  assert.equal(deniedBy(s, put({ ssecAlgorithm: 'AES256' })), undefined);
  // An anonymous request is not the named user: this statement is not what decides it.
  assert.equal(deniedBy(s, put({ anonymous: true })), undefined);
});

test('principals, actions and resources: wildcards, Not* forms, case rules', () => {
  const nullTrue = { Null: { [SSEC_CONDITION_KEY]: 'true' } };
  const denied = (over: object, r: Partial<PolicyRequest> = {}) => deniedBy(statements(policy(deny(nullTrue, over))), put(r)) !== undefined;
  assert.equal(denied({ Action: 's3:Put*' }), true);
  assert.equal(denied({ Action: ['S3:PUTOBJECT'] }), true);
  assert.equal(denied({ Action: 's3:*' }, { action: 's3:GetObject' }), true, 'absent key: Null holds for every action');
  assert.equal(denied({ Action: 's3:Get*' }), false);
  assert.equal(denied({ Action: undefined, NotAction: 's3:GetObject' }), true);
  assert.equal(denied({ Action: undefined, NotAction: 's3:Put*' }), false);
  assert.equal(denied({ Resource: `arn:aws:s3:::${bucket}/a/*` }), true);
  assert.equal(denied({ Resource: `arn:aws:s3:::${bucket}/A/*` }), false, 'resources are case-sensitive');
  assert.equal(denied({ Resource: `arn:aws:s3:::${bucket}/a/?.txt` }), true);
  assert.equal(denied({ Resource: `arn:aws:s3:::${bucket}/a/??.txt` }), false);
  assert.equal(denied({ Resource: undefined, NotResource: `arn:aws:s3:::${bucket}/a/*` }), false);
  assert.equal(denied({ Principal: { AWS: '*' } }, { anonymous: true }), true);
  assert.equal(denied({ Principal: { AWS: 'arn:aws:iam::123456789012:root' } }), true, 'an unresolvable principal may be the caller');
  assert.equal(denied({ Principal: { AWS: 'arn:aws:iam::123456789012:root' } }, { anonymous: true }), false);
  assert.equal(denied({ Principal: { Service: 'logging.s3.amazonaws.com' } }), false);
  assert.equal(denied({ Principal: undefined, NotPrincipal: { AWS: 'arn:aws:iam::123456789012:user/admin' } }), true);
  assert.equal(denied({ Principal: undefined, NotPrincipal: { AWS: '*' } }), false);
  // DeleteObjects names its keys in the body: any key of the bucket may match.
  const anyKey = { action: 's3:DeleteObject', resource: `arn:aws:s3:::${bucket}/*`, anyKeyOf: bucket };
  assert.equal(denied({ Action: 's3:DeleteObject', Resource: `arn:aws:s3:::${bucket}/keep/*` }, anyKey), true);
  assert.equal(denied({ Action: 's3:DeleteObject', Resource: 'arn:aws:s3:::other/*' }, anyKey), false);
});

test('wildcards: * any run, ? one character, no runaway on many stars', () => {
  assert.ok(wildcardMatch('a*b?d', 'aXXbcd', false));
  assert.ok(!wildcardMatch('a*b?d', 'aXXbd', false));
  assert.ok(wildcardMatch('*', '', false));
  assert.ok(!wildcardMatch('*a*a*a*a*a*a*a*a*b', 'a'.repeat(5000), false));
});

test('what each request is authorized as: copies are PutObject on the destination and GetObject on the source', () => {
  const checks = (method: string, url: string, headers: Record<string, string> = {}) => policyChecks(method, classify(method, url, headers), headers);
  const ssec = { 'x-amz-server-side-encryption-customer-algorithm': 'AES256' };
  assert.deepEqual(checks('PUT', '/b/k', ssec), [{ bucket: 'b', action: 's3:PutObject', resource: 'arn:aws:s3:::b/k', ssecAlgorithm: 'AES256' }]);
  assert.deepEqual(checks('PUT', '/b/k', { 'x-amz-copy-source': '/src/a%20b?versionId=v', 'x-amz-copy-source-server-side-encryption-customer-algorithm': 'AES256' }), [
    { bucket: 'b', action: 's3:PutObject', resource: 'arn:aws:s3:::b/k', ssecAlgorithm: undefined },
    { bucket: 'src', action: 's3:GetObjectVersion', resource: 'arn:aws:s3:::src/a b', ssecAlgorithm: undefined },
  ]);
  for (const [method, url] of [['POST', '/b/k?uploads'], ['PUT', '/b/k?partNumber=1&uploadId=u'], ['POST', '/b/k?uploadId=u']] as const) {
    assert.equal(checks(method, url, ssec)[0]!.action, 's3:PutObject', `${method} ${url}`);
    assert.equal(checks(method, url, ssec)[0]!.ssecAlgorithm, 'AES256');
  }
  assert.equal(checks('GET', '/b/k?versionId=1')[0]!.action, 's3:GetObjectVersion');
  assert.equal(checks('GET', '/b/k?tagging&versionId=1')[0]!.action, 's3:GetObjectVersionTagging');
  assert.equal(checks('GET', '/b?list-type=2')[0]!.action, 's3:ListBucket');
  assert.equal(checks('PUT', '/b?policy')[0]!.action, 's3:PutBucketPolicy');
  assert.equal(checks('DELETE', '/b?lifecycle')[0]!.action, 's3:PutLifecycleConfiguration');
  assert.deepEqual(checks('POST', '/b?delete')[0], { bucket: 'b', action: 's3:DeleteObject', resource: 'arn:aws:s3:::b/*', ssecAlgorithm: undefined, anyKeyOf: 'b' });
  assert.deepEqual(checks('GET', '/'), []);
});

test('the replica cache: one fetch per bucket per TTL (absences too), shared by concurrent misses, forgotten on change', async () => {
  let t = 0;
  const cache = new PolicyCache(() => t);
  let fetches = 0;
  const load = async () => (fetches++, { kind: 'none' as const });
  await Promise.all([cache.get('b', undefined, load), cache.get('b', undefined, load)]);
  t = POLICY_TTL_MS - 1;
  await cache.get('b', undefined, load);
  assert.equal(fetches, 1);
  t = POLICY_TTL_MS;
  await cache.get('b', undefined, load);
  assert.equal(fetches, 2);
  cache.forget('b');
  await cache.get('b', undefined, load);
  assert.equal(fetches, 3);
  // A failed read is not kept.
  await assert.rejects(cache.get('c', undefined, async () => Promise.reject(new Error('down'))));
  await cache.get('c', undefined, load);
  assert.equal(fetches, 4);
  // Another reader's entry is its own, whatever the names hold (a bucket name with NUL once collided).
  await cache.get('b\u0000AK', undefined, load);
  await cache.get('b', 'AK', load);
  assert.equal(fetches, 6);
});

test('a carrier edited in the store with a huge chunk index is refused at once (no sparse array walked)', () => {
  const stored = JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Sid: CARRIER_SID,
        Effect: 'Deny',
        Principal: '*',
        Action: 's3:GetObject',
        Resource: [`arn:aws:s3:::${bucket}/.ssec-proxy-policy/v1/0/AAAA`, `arn:aws:s3:::${bucket}/.ssec-proxy-policy/v1/4294967294/AAAA`],
      },
    ],
  });
  assert.throws(() => readStoredPolicy(stored), /unreadable/);
});
