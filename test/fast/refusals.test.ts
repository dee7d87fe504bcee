/**
 * Issue 11 item 4, "refuse what S3 refuses", over the in-memory S3 double: SSE-C parameters in the query
 * string never store plaintext; ListBuckets shows a limited credential only its own buckets; a stored empty
 * body read with a key is an S3 error, never a TypeError.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListBucketsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { newKey, rawRequest, sse, ssecHeaders, startTestProxy, type TestProxy } from '../support/proxy.ts';
import { rejectsWith, startFast, type Fast } from './harness.ts';

let fast: Fast;
const bucket = 'refusals';
const key = newKey();

before(async () => {
  fast = await startFast({ buckets: [bucket, 'team-a-logs', 'team-a-data', 'team-b-secrets'] });
});
after(async () => fast.close());

/** The S3 error code of an XML error body. */
const codeOf = (body: string) => /<Code>([^<]*)<\/Code>/.exec(body)?.[1];

describe('SSE-C parameters in the query string', () => {
  const queryKey = (k = key) => {
    const h = ssecHeaders(k);
    return Object.fromEntries(Object.entries(h).map(([n, v]) => [n.replace(/-md5$/i, '-MD5'), v]));
  };

  test('a PUT with the SSE-C trio in the query (not as headers) is refused and stores nothing', async () => {
    const r = await rawRequest(fast.proxy, fast.double, { method: 'PUT', path: `/${bucket}/query-put`, query: queryKey(), body: 'secret plaintext' });
    assert.equal(r.status, 400, r.body.toString());
    assert.equal(codeOf(r.body.toString()), 'InvalidArgument');
    assert.equal(fast.double.objects.get(bucket, 'query-put'), undefined, 'nothing stored');
  });

  test('minio-js style names (SSECustomerKey…) in the query are refused too', async () => {
    const r = await rawRequest(fast.proxy, fast.double, {
      method: 'PUT',
      path: `/${bucket}/query-put-2`,
      query: { SSECustomerAlgorithm: 'AES256', SSECustomerKey: key.b64, SSECustomerKeyMD5: key.md5 },
      body: 'secret plaintext',
    });
    assert.equal(r.status, 400, r.body.toString());
    assert.equal(fast.double.objects.get(bucket, 'query-put-2'), undefined, 'nothing stored');
  });

  test('the trio in the headers and repeated in the query (minio-js does this) works, as on S3', async () => {
    const r = await rawRequest(fast.proxy, fast.double, {
      method: 'PUT',
      path: `/${bucket}/both`,
      query: { SSECustomerAlgorithm: 'AES256', SSECustomerKey: key.b64, SSECustomerKeyMD5: key.md5 },
      headers: ssecHeaders(key),
      body: 'secret plaintext',
    });
    assert.equal(r.status, 200, r.body.toString());
    assert.ok(!fast.double.objects.get(bucket, 'both')!.body.includes('secret plaintext'));
  });

  test('the same trio as headers stores ciphertext', async () => {
    await fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'header-put', Body: 'secret plaintext', ...sse(key) }));
    assert.ok(!fast.double.objects.get(bucket, 'header-put')!.body.includes('secret plaintext'));
  });
});

describe('ListBuckets for a credential limited to some buckets', () => {
  let limited: TestProxy;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssec-listbuckets-'));
    const d = fast.double;
    const upstream = { accessKeyId: d.accessKeyId, secretAccessKey: d.secretAccessKey };
    writeFileSync(
      join(dir, 'creds.json'),
      JSON.stringify([
        { accessKeyId: 'TEAMA', secretAccessKey: 'team-a-secret', upstream, buckets: ['team-a-*'] },
        { accessKeyId: 'ADMIN', secretAccessKey: 'admin-secret', upstream },
      ]),
    );
    limited = await startTestProxy(d, { SSEC_PROXY_CREDENTIALS_FILE: join(dir, 'creds.json') });
  });
  after(async () => limited.close());

  test('lists only the buckets the credential may touch', async () => {
    const out = await limited.client({ accessKeyId: 'TEAMA', secretAccessKey: 'team-a-secret' }).send(new ListBucketsCommand({}));
    assert.deepEqual(out.Buckets?.map((b) => b.Name).sort(), ['team-a-data', 'team-a-logs']);
  });

  test('an unlimited credential sees every bucket', async () => {
    const out = await limited.client({ accessKeyId: 'ADMIN', secretAccessKey: 'admin-secret' }).send(new ListBucketsCommand({}));
    assert.deepEqual(out.Buckets?.map((b) => b.Name).sort(), [bucket, 'team-a-data', 'team-a-logs', 'team-b-secrets'].sort());
  });

  test('a limited credential still cannot create or read outside its buckets', async () => {
    await rejectsWith(limited.client({ accessKeyId: 'TEAMA', secretAccessKey: 'team-a-secret' }).send(new CreateBucketCommand({ Bucket: 'team-b-new' })), 'AccessDenied', 403);
  });
});

describe('a stored empty body', () => {
  test('an encrypted object emptied in the store, read with the key: an S3 error answer, whole, ranged and HEAD', async () => {
    await fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'emptied', Body: 'x'.repeat(1000), ...sse(key) }));
    fast.double.objects.get(bucket, 'emptied')!.body = Buffer.alloc(0);
    for (const send of [
      () => fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'emptied', ...sse(key) })),
      () => fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'emptied', Range: 'bytes=0-9', ...sse(key) })),
    ]) {
      await rejectsWith(send(), 'InternalError', 500);
    }
    const logs = fast.proxy.logs.filter((l) => l.level === 'warn').map((l) => String(l.msg));
    assert.ok(!logs.some((m) => m.includes('TypeError')), logs.join('\n'));
  });

  test('a plain empty object read with a key: S3 400, not applicable', async () => {
    fast.double.objects.put(bucket, 'plain-empty', Buffer.alloc(0));
    await rejectsWith(fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'plain-empty', ...sse(key) })), 'InvalidRequest', 400);
    await assert.rejects(fast.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'plain-empty', ...sse(key) })));
  });

  test('an empty SSE-C object (written as such) reads back as 0 bytes', async () => {
    await fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'really-empty', Body: Buffer.alloc(0), ...sse(key) }));
    const r = await fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'really-empty', ...sse(key) }));
    assert.equal((await r.Body!.transformToByteArray()).length, 0);
  });
});
