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

/**
 * Real clients: python-requests builds forms the way ceph s3-tests and many apps do (`files=`: every field a
 * part with a filename), signed with SigV2 and with SigV4 (SSE-C fields included); boto3 1.26 signs requests
 * with SigV2 (`signature_version='s3'`), header and presigned query.
 */
const PY = `
import base64, datetime, hashlib, hmac, json, os, sys
from collections import OrderedDict
import requests, boto3
from botocore.config import Config
ep, bucket, ak, sk, region, ca = (os.environ[n] for n in ('EP', 'BUCKET', 'AK', 'SK', 'REGION', 'CA'))
url = ep + '/' + bucket
out = {}
exp = (datetime.datetime.utcnow() + datetime.timedelta(minutes=10)).strftime('%Y-%m-%dT%H:%M:%SZ')
def b64(doc): return base64.b64encode(json.dumps(doc).encode())
# s3-tests' test_post_object_authenticated_request, verbatim in shape (SigV2 policy)
policy = b64({'expiration': exp, 'conditions': [{'bucket': bucket}, ['starts-with', '$key', 'foo'], {'acl': 'private'}, ['starts-with', '$Content-Type', 'text/plain'], ['content-length-range', 0, 1024]]})
sig = base64.b64encode(hmac.new(sk.encode(), policy, hashlib.sha1).digest())
payload = OrderedDict([('key', 'foo.txt'), ('AWSAccessKeyId', ak), ('acl', 'private'), ('signature', sig), ('policy', policy), ('Content-Type', 'text/plain'), ('file', ('bar'))])
r = requests.post(url, files=payload, verify=ca)
out['v2'] = [r.status_code, r.text]
# the same with success_action_status 201 and a key from the file name
policy = b64({'expiration': exp, 'conditions': [{'bucket': bucket}, ['starts-with', '$key', 'foo'], ['eq', '$success_action_status', '201']]})
sig = base64.b64encode(hmac.new(sk.encode(), policy, hashlib.sha1).digest())
payload = OrderedDict([('key', 'foo-\${filename}'), ('AWSAccessKeyId', ak), ('signature', sig), ('policy', policy), ('success_action_status', '201'), ('file', ('named.txt', 'baz'))])
r = requests.post(url, files=payload, verify=ca)
out['v2_201'] = [r.status_code, r.text]
# SigV4 with SSE-C fields, every field a file part
key = base64.b64decode(os.environ['SSEC_KEY'])
ssec = OrderedDict([('x-amz-server-side-encryption-customer-algorithm', 'AES256'), ('x-amz-server-side-encryption-customer-key', os.environ['SSEC_KEY']), ('x-amz-server-side-encryption-customer-key-MD5', base64.b64encode(hashlib.md5(key).digest()).decode())])
now = datetime.datetime.utcnow()
date = now.strftime('%Y%m%dT%H%M%SZ')
cred = '%s/%s/%s/s3/aws4_request' % (ak, date[:8], region)
conds = [{'bucket': bucket}, ['starts-with', '$key', 'sse/'], {'x-amz-algorithm': 'AWS4-HMAC-SHA256'}, {'x-amz-credential': cred}, {'x-amz-date': date}] + [{k: v} for k, v in ssec.items()]
policy = b64({'expiration': exp, 'conditions': conds})
def h(k, m): return hmac.new(k, m.encode(), hashlib.sha256).digest()
skey = h(h(h(h(('AWS4' + sk).encode(), date[:8]), region), 's3'), 'aws4_request')
payload = OrderedDict([('key', 'sse/form.bin'), ('x-amz-algorithm', 'AWS4-HMAC-SHA256'), ('x-amz-credential', cred), ('x-amz-date', date), ('policy', policy), ('x-amz-signature', hmac.new(skey, policy, hashlib.sha256).hexdigest())] + list(ssec.items()) + [('file', ('form.bin', os.environ['FILE']))])
r = requests.post(url, files=payload, verify=ca)
out['v4_ssec'] = [r.status_code, r.text]
# boto3 signing with SigV2: header auth (SSE-C put/get/head) and a presigned GET
s3 = boto3.client('s3', endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk, region_name=region, verify=ca, config=Config(signature_version='s3', s3={'addressing_style': 'path'}))
sse = dict(SSECustomerAlgorithm='AES256', SSECustomerKey=key)
s3.put_object(Bucket=bucket, Key='v2/obj.bin', Body=os.environ['FILE'].encode(), **sse)
out['v2_get'] = s3.get_object(Bucket=bucket, Key='v2/obj.bin', **sse)['Body'].read().decode()
try:
    s3.head_object(Bucket=bucket, Key='v2/obj.bin'); out['v2_head_nokey'] = 'ok'
except Exception as e:
    out['v2_head_nokey'] = e.response['Error']['Code']
out['v2_list'] = [o['Key'] for o in s3.list_objects(Bucket=bucket, Prefix='v2/').get('Contents', [])]
s3.put_object(Bucket=bucket, Key='v2/plain.txt', Body=b'plain')
out['v2_presigned'] = requests.get(s3.generate_presigned_url('get_object', Params={'Bucket': bucket, 'Key': 'v2/plain.txt'}, ExpiresIn=300), verify=ca).text
bad = boto3.client('s3', endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key='wrong', region_name=region, verify=ca, config=Config(signature_version='s3', s3={'addressing_style': 'path'}))
try:
    bad.get_object(Bucket=bucket, Key='v2/plain.txt'); out['v2_bad'] = 'ok'
except Exception as e:
    out['v2_bad'] = e.response['Error']['Code']
print(json.dumps(out))
`;

test('python-requests forms (SigV2, SigV4 with SSE-C fields) and boto3 SigV2 header and presigned requests', async () => {
  const k = newKey();
  const file = randomBytes(3000).toString('hex');
  const { execFile } = await import('node:child_process');
  const env = { ...process.env, EP: t.endpoint, BUCKET: bucket, AK: up.accessKeyId, SK: up.secretAccessKey, REGION: up.region, CA: t.caPath, SSEC_KEY: k.b64, FILE: file };
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile('/usr/bin/python3', ['-c', PY], { env, timeout: 120_000 }, (err, out, errOut) => (err ? reject(new Error(errOut || String(err))) : resolve(out))),
  );
  const out = JSON.parse(stdout) as Record<string, unknown>;
  assert.deepEqual(out.v2, [204, '']);
  const [status201, xml] = out.v2_201 as [number, string];
  assert.equal(status201, 201, xml);
  assert.match(xml, /<Key>foo-named\.txt<\/Key>/);
  assert.deepEqual(out.v4_ssec, [204, '']);
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'foo.txt' }));
  assert.equal(await got.Body!.transformToString(), 'bar');
  const enc = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'sse/form.bin', ...sse(k) }));
  assert.equal(await enc.Body!.transformToString(), file);
  await assert.rejects(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'sse/form.bin' })));
  assert.equal(out.v2_get, file);
  assert.equal(out.v2_head_nokey, '400');
  assert.deepEqual(out.v2_list, ['v2/obj.bin']);
  assert.equal(out.v2_presigned, 'plain');
  assert.equal(out.v2_bad, 'SignatureDoesNotMatch');
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
