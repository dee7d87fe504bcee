/**
 * PostObject forms as S3 reads them (issue 12): the part named `file` is the file and every other part a
 * field whatever its headers (python-requests sends each with a filename), fields after the file are ignored,
 * names compare without case; SigV2 and SigV4 policy signatures; each condition and each error with S3's
 * code, status and message; the answers (201 XML, 200, 204, 303 redirect).
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { deriveSigningKey } from '../../src/sigv4/canonical.ts';
import { errorCode, errorMessage, newKey, sse, startTestProxy, type TestProxy } from '../support/proxy.ts';
import { startFast, type Fast } from './harness.ts';

let fast: Fast;
const bucket = 'forms';
before(async () => {
  fast = await startFast({ buckets: [bucket] });
});
after(async () => fast.close());

interface Part {
  name: string;
  value: string | Buffer;
  /** Sent as a file part (Content-Disposition filename), as python-requests sends `files=` entries. */
  filename?: string;
  type?: string;
}

function multipart(parts: Part[]): { body: Buffer; type: string } {
  const boundary = '----form' + randomBytes(6).toString('hex');
  const chunks: Buffer[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) head += `; filename="${p.filename}"`;
    head += '\r\n';
    if (p.type !== undefined) head += `Content-Type: ${p.type}\r\n`;
    chunks.push(Buffer.from(head + '\r\n'), Buffer.from(p.value), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
}

const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
const base64 = (doc: unknown) => Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc)).toString('base64');

/** SigV2 signature fields for a policy document (object, or raw text for malformed ones). */
function v2(doc: unknown, secret = fast.double.secretAccessKey, accessKeyId = fast.double.accessKeyId): Record<string, string> {
  const policy = base64(doc);
  return { AWSAccessKeyId: accessKeyId, policy, signature: createHmac('sha1', secret).update(policy).digest('base64') };
}

/** SigV4 signature fields; the policy gets the three conditions S3 requires of SigV4 forms. */
function v4(doc: { expiration?: string; conditions: unknown[] }, opts: { region?: string; date?: string } = {}): Record<string, string> {
  const date = opts.date ?? new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  const region = opts.region ?? fast.double.region;
  const credential = `${fast.double.accessKeyId}/${date.slice(0, 8)}/${region}/s3/aws4_request`;
  const policy = base64({
    ...doc,
    conditions: [...doc.conditions, { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' }, { 'x-amz-credential': credential }, { 'x-amz-date': date }],
  });
  const signature = createHmac('sha256', deriveSigningKey(fast.double.secretAccessKey, date.slice(0, 8), region, 's3')).update(policy).digest('hex');
  return { 'X-Amz-Algorithm': 'AWS4-HMAC-SHA256', 'X-Amz-Credential': credential, 'X-Amz-Date': date, Policy: policy, 'X-Amz-Signature': signature };
}

/** s3-tests' base policy (C0). */
const C0 = () => [{ bucket }, ['starts-with', '$key', 'foo'], { acl: 'private' }, ['starts-with', '$Content-Type', 'text/plain'], ['content-length-range', 0, 1024]];

/** Fields as python-requests' `files=` sends them (each with a filename), then the file. */
function requestsStyle(fields: Record<string, string>, file: Part = { name: 'file', value: 'bar', filename: 'file' }): Part[] {
  return [...Object.entries(fields).map(([name, value]) => ({ name, value, filename: name })), file];
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function post(parts: Part[], opts: { target?: TestProxy; path?: string } = {}): Promise<Answer> {
  const target = opts.target ?? fast.proxy;
  const f = multipart(parts);
  const url = new URL(target.endpoint);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: url.hostname, port: url.port, method: 'POST', path: opts.path ?? `/${bucket}`, ca: target.caPem, agent: false, headers: { 'content-type': f.type, 'content-length': String(f.body.length) } },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(f.body);
  });
}

const unescapeXml = (s: string) => s.replace(/&(apos|quot|lt|gt|amp);/g, (_m, e: string) => ({ apos: "'", quot: '"', lt: '<', gt: '>', amp: '&' })[e] ?? '');

function refused(r: Answer, status: number, code: string, message?: string): void {
  assert.equal(r.status, status, r.body);
  assert.equal(errorCode(r.body), code, r.body);
  if (message !== undefined) assert.equal(unescapeXml(errorMessage(r.body) ?? ''), message);
}

const stored = (key: string) => fast.double.objects.get(bucket, key);
const F0 = (doc: unknown, extra: Record<string, string> = {}): Record<string, string> => ({ key: 'foo.txt', acl: 'private', 'Content-Type': 'text/plain', ...v2(doc), ...extra });

describe('the form as S3 reads it', () => {
  test('fields sent as file parts (python-requests) are fields: SigV2 form stored (204)', async () => {
    const r = await post(requestsStyle({ ...F0({ expiration: inAnHour(), conditions: C0() }), key: 'foo-requests.txt' }).map((p) => p), {});
    // key foo-requests.txt still starts with foo
    assert.equal(r.status, 204, r.body);
    assert.equal(r.body, '');
    assert.equal(stored('foo-requests.txt')?.body.toString(), 'bar');
    assert.equal(stored('foo-requests.txt')?.contentType, 'text/plain');
  });

  test('a SigV4 form with SSE-C fields sent as file parts is stored encrypted and read back with the key', async () => {
    const k = newKey();
    const ssec = { 'x-amz-server-side-encryption-customer-algorithm': 'AES256', 'x-amz-server-side-encryption-customer-key': k.b64, 'x-amz-server-side-encryption-customer-key-MD5': k.md5 };
    const conditions = [{ bucket }, ['starts-with', '$key', 'enc/'], ...Object.entries(ssec).map(([n, v]) => ['eq', '$' + n.toLowerCase(), v])];
    const file = randomBytes(5000);
    const r = await post(requestsStyle({ key: 'enc/${filename}', ...ssec, ...v4({ expiration: inAnHour(), conditions }) }, { name: 'file', value: file, filename: 'secret.bin' }));
    assert.equal(r.status, 204, r.body);
    assert.equal(r.headers['x-amz-server-side-encryption-customer-algorithm'], 'AES256');
    assert.ok(!stored('enc/secret.bin')!.body.includes(file.subarray(0, 64)), 'the store holds ciphertext');
    const got = await fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'enc/secret.bin', ...sse(k) }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(file));
  });

  test('fields after the file are ignored: a key after it is missing (400), a field after it is neither stored nor "extra"', async () => {
    const fields = F0({ expiration: inAnHour(), conditions: C0() });
    const { key: _key, ...withoutKey } = fields;
    const late = await post([...requestsStyle(withoutKey), { name: 'key', value: 'foo.txt' }]);
    refused(late, 400, 'InvalidArgument', "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.");
    const r = await post([...requestsStyle({ ...fields, key: 'foo-late.txt' }), { name: 'x-amz-meta-late', value: '1' }, { name: 'file', value: 'second', filename: 'f2' }]);
    assert.equal(r.status, 204, r.body);
    assert.equal(stored('foo-late.txt')?.body.toString(), 'bar');
    assert.deepEqual(stored('foo-late.txt')?.metadata, {});
  });

  test('a file part without a filename (a text area) is the file; ${filename} stays as it is; default type binary/octet-stream', async () => {
    const doc = { expiration: inAnHour(), conditions: [{ bucket }, ['starts-with', '$key', 'text-'], { acl: 'private' }] };
    const r = await post([{ name: 'key', value: 'text-${filename}' }, { name: 'acl', value: 'private' }, ...Object.entries(v2(doc)).map(([name, value]) => ({ name, value })), { name: 'file', value: 'typed text' }]);
    assert.equal(r.status, 204, r.body);
    assert.equal(stored('text-${filename}')?.body.toString(), 'typed text');
    assert.equal(stored('text-${filename}')?.contentType, 'binary/octet-stream');
  });

  test('${filename} takes the file name without its path, before the policy is checked', async () => {
    const r = await post(requestsStyle({ ...F0({ expiration: inAnHour(), conditions: C0() }), key: '${filename}' }, { name: 'file', value: 'bar', filename: 'C:\\Users\\me\\foo-name.txt', type: 'text/plain' }));
    assert.equal(r.status, 204, r.body);
    assert.equal(stored('foo-name.txt')?.body.toString(), 'bar');
  });

  test('field names and condition names and operators compare without case', async () => {
    const doc = { expiration: inAnHour(), conditions: [{ bUcKeT: bucket }, ['StArTs-WiTh', '$KeY', 'foo'], { AcL: 'private' }, ['StArTs-WiTh', '$CoNtEnT-TyPe', 'text/plain'], ['content-length-range', 0, 1024]] };
    const s = v2(doc);
    const r = await post(requestsStyle({ kEy: 'foo-case.txt', awsaccesskeyid: s.AWSAccessKeyId!, aCl: 'private', SIGNATURE: s.signature!, pOLICy: s.policy!, 'content-type': 'text/plain' }));
    assert.equal(r.status, 204, r.body);
  });

  test('x-amz-meta-*, Cache-Control and tagging fields become the object\'s; x-ignore-* fields are ignored', async () => {
    const tagging = '<Tagging><TagSet><Tag><Key>0</Key><Value>a b</Value></Tag><Tag><Key>1</Key><Value>1</Value></Tag></TagSet></Tagging>';
    const conditions = [...C0(), ['starts-with', '$x-amz-meta-foo', 'bar'], ['eq', '$Cache-Control', 'max-age=60'], ['starts-with', '$tagging', '']];
    const r = await post(requestsStyle({ ...F0({ expiration: inAnHour(), conditions }), key: 'foo-meta.txt', 'X-Amz-Meta-Foo': 'barclamp', 'Cache-Control': 'max-age=60', tagging, 'x-ignore-me': 'x' }));
    assert.equal(r.status, 204, r.body);
    const o = stored('foo-meta.txt')!;
    assert.deepEqual(o.metadata, { foo: 'barclamp' });
    assert.equal(o.headers['cache-control'], 'max-age=60');
    assert.deepEqual(o.tags, [['0', 'a b'], ['1', '1']]);
    const bad = await post(requestsStyle({ ...F0({ expiration: inAnHour(), conditions }), key: 'foo-badtags.txt', 'X-Amz-Meta-Foo': 'barclamp', 'Cache-Control': 'max-age=60', tagging: 'not-xml' }));
    refused(bad, 400, 'MalformedXML');
    assert.equal(stored('foo-badtags.txt'), undefined);
  });

  test('fields before the file over 64 KiB (as file parts too) → 400 MaxPostPreDataLengthExceeded', async () => {
    const r = await post(requestsStyle({ ...F0({ expiration: inAnHour(), conditions: C0() }), 'x-ignore-pad': 'p'.repeat(70 * 1024) }));
    refused(r, 400, 'MaxPostPreDataLengthExceeded');
  });

  test('no file → 400 InvalidArgument', async () => {
    const r = await post(Object.entries(F0({ expiration: inAnHour(), conditions: C0() })).map(([name, value]) => ({ name, value })));
    refused(r, 400, 'InvalidArgument', 'POST requires exactly one file upload per request.');
  });
});

describe('the answers', () => {
  const form = (extra: Record<string, string>, conditions: unknown[] = []) =>
    requestsStyle({ ...F0({ expiration: inAnHour(), conditions: [...C0(), ...conditions] }), key: 'foo/a b.txt', ...extra });

  test('success_action_status 201: PostResponse XML with the object\'s URL, bucket, key and ETag', async () => {
    const r = await post(form({ success_action_status: '201' }, [['eq', '$success_action_status', '201']]));
    assert.equal(r.status, 201, r.body);
    const etag = `"${createHash('md5').update('bar').digest('hex')}"`;
    const location = `${fast.proxy.endpoint}/${bucket}/foo%2Fa%20b.txt`;
    assert.equal(r.body, `<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse><Location>${location}</Location><Bucket>${bucket}</Bucket><Key>foo/a b.txt</Key><ETag>&quot;${etag.slice(1, -1)}&quot;</ETag></PostResponse>`);
    assert.equal(r.headers.etag, etag);
    assert.equal(r.headers.location, location);
  });

  test('success_action_status 200 → 200 empty; any other value → 204 empty', async () => {
    const ok = await post(form({ success_action_status: '200' }, [['starts-with', '$success_action_status', '']]));
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.body, '');
    const other = await post(form({ success_action_status: '404' }, [['starts-with', '$success_action_status', '']]));
    assert.equal(other.status, 204, other.body);
  });

  test('success_action_redirect / redirect: 303 to the URL with bucket, key and etag appended (its own query kept); a relative URL is as if absent', async () => {
    const etag = encodeURIComponent(`"${createHash('md5').update('bar').digest('hex')}"`);
    const cond = [['starts-with', '$success_action_redirect', ''], ['starts-with', '$redirect', '']];
    const r = await post(form({ success_action_redirect: 'https://app.example/done' }, cond.slice(0, 1)));
    assert.equal(r.status, 303, r.body);
    assert.equal(r.headers.location, `https://app.example/done?bucket=${bucket}&key=foo%2Fa+b.txt&etag=${etag}`);
    const q = await post(form({ redirect: 'https://app.example/done?from=form' }, cond.slice(1)));
    assert.equal(q.headers.location, `https://app.example/done?from=form&bucket=${bucket}&key=foo%2Fa+b.txt&etag=${etag}`);
    const relative = await post(form({ success_action_redirect: '/done' }, cond.slice(0, 1)));
    assert.equal(relative.status, 204);
  });
});

describe('the policy\'s conditions, with S3\'s answers', () => {
  const failed = (shown: string) => `Invalid according to Policy: Policy Condition failed: ${shown}`;
  const with_ = (conditions: unknown[], extra: Record<string, string> = {}, key = 'foo-cond.txt') => post(requestsStyle({ ...F0({ expiration: inAnHour(), conditions }), key, ...extra }));

  test('starts-with on $Content-Type reads a comma list: every item must match', async () => {
    const conditions = [{ bucket }, ['starts-with', '$key', 'foo'], { acl: 'private' }, ['starts-with', '$Content-Type', 'image/']];
    assert.equal((await with_(conditions, { 'Content-Type': 'image/jpg,image/png' })).status, 204);
    refused(await with_(conditions, { 'Content-Type': 'image/jpg,text/plain' }), 403, 'AccessDenied', failed('["starts-with", "$Content-Type", "image/"]'));
  });

  test('eq and the exact {"field": "value"} form; a field the form lacks fails even starts-with ""', async () => {
    refused(await with_([...C0(), ['eq', '$x-amz-meta-foo', '']], { 'x-amz-meta-foo': 'barclamp' }), 403, 'AccessDenied', failed('["eq", "$x-amz-meta-foo", ""]'));
    refused(await with_([{ bucket }, ['starts-with', '$key', 'foo'], { acl: 'public-read' }, ['starts-with', '$Content-Type', '']]), 403, 'AccessDenied', failed('["eq", "$acl", "public-read"]'));
    refused(await with_([...C0(), ['starts-with', '$x-amz-meta-foo', '']]), 403, 'AccessDenied', failed('["starts-with", "$x-amz-meta-foo", ""]'));
    refused(await with_([...C0(), ['eq', 'acl', 'private']]), 403, 'AccessDenied', failed('["eq", "acl", "private"]'));
  });

  test('the policy of another bucket → 403', async () => {
    refused(await with_([{ bucket: 'other' }, ...C0().slice(1)], { bucket }), 403, 'AccessDenied', failed('["eq", "$bucket", "other"]'));
  });

  test('a field no condition covers → 403 "Extra input fields", named as sent; signature fields, file and x-ignore-* need none', async () => {
    refused(await with_(C0(), { 'X-Amz-Meta-Sneaky': '1', 'x-ignore-fine': '1' }), 403, 'AccessDenied', 'Invalid according to Policy: Extra input fields: X-Amz-Meta-Sneaky');
  });

  test('content-length-range: bounds inclusive, numbers or numeric strings; outside → 400 EntityTooSmall / EntityTooLarge', async () => {
    const range = (min: unknown, max: unknown) => [{ bucket }, ['starts-with', '$key', 'foo'], { acl: 'private' }, ['starts-with', '$Content-Type', ''], ['content-length-range', min, max]];
    const file = (n: number): Part => ({ name: 'file', value: Buffer.alloc(n, 1), filename: 'f' });
    const send = (min: unknown, max: unknown, n: number) => post(requestsStyle(F0({ expiration: inAnHour(), conditions: range(min, max) }), file(n)));
    assert.equal((await send(5, 10, 5)).status, 204);
    assert.equal((await send('5', '10', 10)).status, 204);
    const small = await send(5, 10, 1);
    refused(small, 400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size');
    assert.match(small.body, /<ProposedSize>1<\/ProposedSize><MinSizeAllowed>5<\/MinSizeAllowed>/);
    refused(await send(5, 10, 12), 400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size');
    refused(await send(0, 0, 3), 400, 'EntityTooLarge');
    refused(await send('test', 10, 3), 403, 'AccessDenied', failed('["content-length-range", "test", 10]'));
  });

  test('an expired policy → 403', async () => {
    const r = await post(requestsStyle(F0({ expiration: '2020-01-01T00:00:00.000Z', conditions: C0() })));
    refused(r, 403, 'AccessDenied', 'Invalid according to Policy: Policy expired.');
  });

  test('a policy S3 cannot read → 400 InvalidPolicyDocument with S3\'s words', async () => {
    const cases: Array<[unknown, string]> = [
      [{ conditions: C0() }, 'Invalid Policy: Policy missing expiration.'],
      [{ expiration: inAnHour() }, 'Invalid Policy: Policy missing conditions.'],
      [{ EXPIRATION: inAnHour(), conditions: C0() }, "Invalid Policy: Unexpected: 'expiration'"],
      [{ expiration: inAnHour(), CONDITIONS: C0() }, "Invalid Policy: Unexpected: 'conditions'"],
      [{ expiration: '2030-01-01 00:00:00+00:00', conditions: C0() }, "Invalid Policy: Invalid 'expiration' value: '2030-01-01 00:00:00+00:00'"],
      [{ expiration: inAnHour(), conditions: {} }, "Invalid Policy: Invalid 'conditions' value: must be a List."],
      [{ expiration: inAnHour(), conditions: [{}] }, 'Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.'],
      [{ expiration: inAnHour(), conditions: [{ 'content-length': 5 }] }, 'Invalid Policy: Invalid Simple-Condition: value must be a string.'],
      [{ expiration: inAnHour(), conditions: [['content-length-range', 0]] }, 'Invalid Policy: Invalid content-length-range: wrong number of arguments.'],
      [{ expiration: inAnHour(), conditions: [['content-length-range', 0, 1.5]] }, 'Invalid Policy: Invalid JSON.'],
      [{ expiration: inAnHour(), conditions: [['matches', '$key', 'x']] }, "Invalid Policy: Invalid Condition: unknown operation 'matches'."],
      [{ expiration: inAnHour(), conditions: [[]] }, 'Invalid Policy: Invalid Condition: missing operation identifier.'],
      ['{"expiration": ', 'Invalid Policy: Invalid JSON.'],
    ];
    for (const [doc, message] of cases) refused(await post(requestsStyle(F0(doc))), 400, 'InvalidPolicyDocument', message);
    refused(await post(requestsStyle(F0({ expiration: inAnHour(), conditions: [['content-length-range', -1, 0]] }))), 400, 'InvalidPolicyDocument');
  });
});

describe('the signature fields', () => {
  const doc = () => ({ expiration: inAnHour(), conditions: C0() });
  test('SigV2: a missing field is named (400); a bad signature 403 SignatureDoesNotMatch; an unknown key 403 InvalidAccessKeyId', async () => {
    const { signature: _s, ...noSignature } = F0(doc());
    refused(await post(requestsStyle(noSignature)), 400, 'InvalidArgument', "Bucket POST must contain a field named 'Signature'.  If it is specified, please check the order of the fields.");
    refused(await post(requestsStyle({ ...F0(doc()), ...v2(doc(), 'wrong-secret') })), 403, 'SignatureDoesNotMatch');
    refused(await post(requestsStyle({ ...F0(doc()), ...v2(doc(), 'x', 'AKUNKNOWN') })), 403, 'InvalidAccessKeyId');
  });

  test('a signature over the policy text as sent: a changed policy → 403 SignatureDoesNotMatch, not a policy error', async () => {
    const fields = F0(doc());
    refused(await post(requestsStyle({ ...fields, policy: fields.policy!.slice(0, -4) })), 403, 'SignatureDoesNotMatch');
  });

  test('no signature fields: anonymous, which the proxy does not serve → 403 AccessDenied', async () => {
    refused(await post(requestsStyle({ key: 'foo.txt', acl: 'public-read' })), 403, 'AccessDenied', 'Access Denied');
  });

  test('SigV4: a missing field is named; another region → 400 naming the credential; a malformed date → 400', async () => {
    const d = { expiration: inAnHour(), conditions: C0() };
    const { 'X-Amz-Algorithm': _a, ...noAlgorithm } = v4(d);
    refused(await post(requestsStyle({ key: 'foo.txt', acl: 'private', 'Content-Type': 'text/plain', ...noAlgorithm })), 400, 'InvalidArgument', "Bucket POST must contain a field named 'X-Amz-Algorithm'.  If it is specified, please check the order of the fields.");
    const other = await post(requestsStyle({ key: 'foo.txt', acl: 'private', 'Content-Type': 'text/plain', ...v4(d, { region: 'eu-west-3' }) }));
    refused(other, 400, 'InvalidArgument', `the region 'eu-west-3' is wrong; expecting '${fast.double.region}'`);
    assert.match(other.body, /<ArgumentName>X-Amz-Credential<\/ArgumentName>/);
    const bad = await post(requestsStyle({ key: 'foo.txt', acl: 'private', 'Content-Type': 'text/plain', ...v4(d, { date: '20300101' }) }));
    refused(bad, 400, 'InvalidArgument', 'X-Amz-Date must be formated via ISO8601 Long format');
  });

  test('SSEC_PROXY_ALLOW_SIGV2=false: a SigV2 form → 400 InvalidRequest, as S3 where SigV2 is not offered', async () => {
    const v4only = await startTestProxy(fast.double, { SSEC_PROXY_ALLOW_SIGV2: 'false' });
    try {
      refused(await post(requestsStyle({ ...F0(doc()), key: 'foo-v4only.txt' }), { target: v4only }), 400, 'InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
      assert.equal(stored('foo-v4only.txt'), undefined);
    } finally {
      await v4only.close();
    }
  });
});
