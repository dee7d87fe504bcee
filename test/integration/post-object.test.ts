/**
 * PostObject (browser form upload) with SSE-C form fields: the SigV4 policy signature and its conditions are
 * checked as S3 checks them, and the file is stored encrypted.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CreateBucketCommand, DeleteBucketPolicyCommand, GetObjectCommand, HeadObjectCommand, PutBucketPolicyCommand, type S3Client } from '@aws-sdk/client-s3';
import { deriveSigningKey } from '../../src/sigv4/canonical.ts';
import { errorCode, newKey, rgwUpstream, sse, startTestProxy, type SseKey, type TestProxy, type UpstreamInfo } from '../support/proxy.ts';

let up: UpstreamInfo;
let t: TestProxy;
let s3: S3Client;
const bucket = `post-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
  s3 = t.client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
});
after(async () => t?.close());

function amzDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function form(k: SseKey | undefined, opts: { key?: string; file: Buffer; secret?: string; expire?: number; maxSize?: number; extraField?: boolean }) {
  const now = new Date();
  const date = amzDate(now);
  const credential = `${up.accessKeyId}/${date.slice(0, 8)}/${up.region}/s3/aws4_request`;
  const ssec: Record<string, string> = k
    ? {
        'x-amz-server-side-encryption-customer-algorithm': 'AES256',
        'x-amz-server-side-encryption-customer-key': k.b64,
        'x-amz-server-side-encryption-customer-key-MD5': k.md5,
      }
    : {};
  const policy = Buffer.from(
    JSON.stringify({
      expiration: new Date(Date.now() + (opts.expire ?? 300_000)).toISOString(),
      conditions: [
        { bucket },
        ['starts-with', '$key', 'uploads/'],
        ['content-length-range', 0, opts.maxSize ?? 10_000_000],
        { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' },
        { 'x-amz-credential': credential },
        { 'x-amz-date': date },
        ['starts-with', '$Content-Type', ''],
        ...Object.entries(ssec).map(([n, v]) => ({ [n]: v })),
      ],
    }),
  ).toString('base64');
  const signature = createHmac('sha256', deriveSigningKey(opts.secret ?? up.secretAccessKey, date.slice(0, 8), up.region, 's3'))
    .update(policy)
    .digest('hex');
  const fields: Record<string, string> = {
    key: opts.key ?? 'uploads/${filename}',
    'Content-Type': 'text/plain',
    'x-amz-algorithm': 'AWS4-HMAC-SHA256',
    'x-amz-credential': credential,
    'x-amz-date': date,
    policy,
    'x-amz-signature': signature,
    ...ssec,
    ...(opts.extraField ? { 'x-amz-meta-sneaky': '1' } : {}),
  };
  const boundary = '----ssec' + randomBytes(8).toString('hex');
  const parts: Buffer[] = [];
  for (const [n, v] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${n}"\r\n\r\n${v}\r\n`));
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="hello.txt"\r\nContent-Type: text/plain\r\n\r\n`));
  parts.push(opts.file, Buffer.from(`\r\n--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

function post(f: { body: Buffer; type: string }, target: TestProxy = t): Promise<{ status: number; body: string }> {
  const url = new URL(target.endpoint);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: url.hostname, port: url.port, method: 'POST', path: `/${bucket}`, ca: target.caPem, headers: { 'content-type': f.type, 'content-length': String(f.body.length) } },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(f.body);
  });
}

test('a signed form with SSE-C fields stores the file encrypted (204), readable only with the key', async () => {
  const k = newKey();
  const file = randomBytes(100_000);
  const r = await post(form(k, { file }));
  assert.equal(r.status, 204, r.body);
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'uploads/hello.txt', ...sse(k) }));
  assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(file));
  await assert.rejects(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'uploads/hello.txt' })), (e: Error) => e.name === 'InvalidRequest');
});

test('the policy is enforced: bad signature 403, expired 403, key outside the prefix 403, extra field 403, too large 400', async () => {
  const k = newKey();
  const file = randomBytes(1000);
  const cases: Array<[string, Parameters<typeof form>[1], number, string]> = [
    ['bad signature', { file, secret: 'wrong' }, 403, 'SignatureDoesNotMatch'],
    ['expired', { file, expire: -60_000 }, 403, 'AccessDenied'],
    ['key outside prefix', { file, key: 'elsewhere/x' }, 403, 'AccessDenied'],
    ['extra field', { file, extraField: true }, 403, 'AccessDenied'],
    ['too large', { file, maxSize: 10 }, 400, 'EntityTooLarge'],
  ];
  for (const [label, opts, status, code] of cases) {
    const r = await post(form(k, opts));
    assert.equal(r.status, status, `${label}: ${r.body}`);
    assert.equal(errorCode(r.body), code, label);
  }
});

test('a form signed by a credential limited to other buckets → 403 AccessDenied, nothing stored', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssec-post-allow-'));
  writeFileSync(
    join(dir, 'creds.json'),
    JSON.stringify([{ accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey, upstream: { accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey }, buckets: ['elsewhere-*'] }]),
  );
  const limited = await startTestProxy(up, { SSEC_PROXY_CREDENTIALS_FILE: join(dir, 'creds.json') });
  try {
    const r = await post(form(newKey(), { file: randomBytes(100), key: 'uploads/limited.txt' }), limited);
    assert.equal(r.status, 403, r.body);
    assert.equal(errorCode(r.body), 'AccessDenied');
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'uploads/limited.txt' })));
  } finally {
    await limited.close();
  }
});

test("a bucket policy requiring SSE-C (AWS's Null condition) holds for forms: without the SSE-C fields 403 and nothing stored", async () => {
  const Policy = JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Deny', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${bucket}/*`, Condition: { Null: { 's3:x-amz-server-side-encryption-customer-algorithm': 'true' } } }],
  });
  await s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy }));
  try {
    const plain = await post(form(undefined, { file: randomBytes(100), key: 'uploads/policy-plain' }));
    assert.equal(plain.status, 403, plain.body);
    assert.equal(errorCode(plain.body), 'AccessDenied');
    await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'uploads/policy-plain' })), (e: Error) => e.name === 'NotFound');
    const sealed = await post(form(newKey(), { file: randomBytes(100), key: 'uploads/policy-sealed' }));
    assert.equal(sealed.status, 204, sealed.body);
  } finally {
    await s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
  }
});
