/**
 * Issue 15: each metric an operator alerts on moves when its event happens, and the access-log line names what
 * happened (S3 error code, client, access key id, method, user agent, encryption), over the in-memory S3 double.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import https from 'node:https';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { GetObjectCommand, PutObjectCommand, PutObjectTaggingCommand } from '@aws-sdk/client-s3';
import type { Counter, Gauge } from 'prom-client';
import { Metrics } from '../../src/admin.ts';
import { deriveSigningKey } from '../../src/sigv4/canonical.ts';
import { logLine, newKey, openSsecPut, sse } from '../support/proxy.ts';
import { rejectsWith, startFast, type Fast } from './harness.ts';

const bucket = 'metrics';
const dir = mkdtempSync(join(tmpdir(), 'ssec-metrics-'));
const keysFile = join(dir, 'keys.json');
writeFileSync(
  keysFile,
  JSON.stringify({
    'master-1': randomBytes(32).toString('base64'),
    'off-key': { versions: [randomBytes(32).toString('base64')], disabled: true },
  }),
);
const metrics = new Metrics();
let fast: Fast;

before(async () => {
  fast = await startFast({ buckets: [bucket], metrics, env: { SSEC_PROXY_KMS_LOCAL_KEYS: keysFile, SSEC_PROXY_MAX_CONCURRENT_UPLOADS: '7' } });
});
after(async () => {
  await fast.close();
  metrics.close();
});

/** The value of one series of `metric` (0 when it has none yet). */
async function value(metric: Counter | Gauge, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  const series = values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x) && Object.keys(v.labels).length === Object.keys(labels).length);
  return series?.value ?? 0;
}

/** How much each series moved while `op` ran. */
async function delta(metric: Counter, labels: Record<string, string>, op: () => Promise<unknown>): Promise<number> {
  const before = await value(metric, labels);
  await op();
  // The access line (and its metrics) is written when the proxy's side of the exchange ends.
  await fast.double.idle();
  await new Promise((r) => setTimeout(r, 20));
  return (await value(metric, labels)) - before;
}

test('object reads and writes are counted by the encryption mode the answer reports', async () => {
  const k = newKey();
  const body = randomBytes(1000);
  const cases: Array<[string, Record<string, string>, string]> = [
    ['plain', {}, 'plain'],
    ['ssec', sse(k), 'sse-c'],
    ['sses3', { ServerSideEncryption: 'AES256' }, 'sse-s3'],
    ['ssekms', { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'master-1' }, 'sse-kms'],
  ];
  for (const [name, params, mode] of cases) {
    assert.equal(await delta(metrics.objectRequests, { operation: 'PutObject', mode }, () => fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: body, ...params }))), 1, `PUT ${mode}`);
    const readParams = mode === 'sse-c' ? sse(k) : {};
    const read = async () => (await fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: name, ...readParams }))).Body!.transformToByteArray();
    assert.equal(await delta(metrics.objectRequests, { operation: 'GetObject', mode }, read), 1, `GET ${mode}`);
  }
  const since = fast.proxy.logs.length;
  await fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'sses3' }));
  assert.equal((await logLine(fast.proxy, since, 'GetObject')).sse, 'sse-s3');
});

test('authentication failures are counted by S3 error code, and the access line names the code and the claimed access key, never the secret', async () => {
  const secret = `wrong-${randomBytes(8).toString('hex')}`;
  const wrongSecret = fast.proxy.client({ secretAccessKey: secret });
  const since = fast.proxy.logs.length;
  const signature = await delta(metrics.authFailures, { code: 'SignatureDoesNotMatch' }, () =>
    rejectsWith(wrongSecret.send(new GetObjectCommand({ Bucket: bucket, Key: 'plain' })), 'SignatureDoesNotMatch', 403),
  );
  assert.equal(signature, 1);
  const line = await logLine(fast.proxy, since, 'GetObject');
  assert.equal(line.code, 'SignatureDoesNotMatch');
  assert.equal(line.status, 403);
  assert.equal(line.accessKeyId, fast.double.accessKeyId);
  assert.equal(line.method, 'GET');
  assert.match(String(line.client), /127\.0\.0\.1/);
  assert.match(String(line.userAgent), /aws-sdk-js/);
  assert.ok(!JSON.stringify(fast.proxy.logs).includes(secret), 'the secret the client signed with is in the log');

  const unknown = fast.proxy.client({ accessKeyId: 'AKIDUNKNOWN', secretAccessKey: secret });
  const since2 = fast.proxy.logs.length;
  assert.equal(
    await delta(metrics.authFailures, { code: 'InvalidAccessKeyId' }, () => rejectsWith(unknown.send(new GetObjectCommand({ Bucket: bucket, Key: 'plain' })), 'InvalidAccessKeyId', 403)),
    1,
  );
  assert.equal((await logLine(fast.proxy, since2, 'GetObject')).accessKeyId, 'AKIDUNKNOWN');

  // A wrong SSE-C key is the client's mistake about the object, not an authentication failure.
  const before = (await metrics.authFailures.get()).values.reduce((n, v) => n + v.value, 0);
  const since3 = fast.proxy.logs.length;
  await rejectsWith(fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ssec', ...sse(newKey()) })), 'AccessDenied', 403);
  assert.equal((await logLine(fast.proxy, since3, 'GetObject')).code, 'AccessDenied');
  assert.equal((await metrics.authFailures.get()).values.reduce((n, v) => n + v.value, 0), before);
});

/** A browser form upload (PostObject) of a small file, its policy signed with `secret`: the status. */
function postForm(secret: string): Promise<number> {
  const boundary = '----s3ssecproxymetrics';
  const date = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  const credential = `${fast.double.accessKeyId}/${date.slice(0, 8)}/${fast.double.region}/s3/aws4_request`;
  const policy = Buffer.from(
    JSON.stringify({
      expiration: new Date(Date.now() + 60_000).toISOString(),
      conditions: [{ bucket }, ['starts-with', '$key', ''], { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' }, { 'x-amz-credential': credential }, { 'x-amz-date': date }],
    }),
  ).toString('base64');
  const signature = createHmac('sha256', deriveSigningKey(secret, date.slice(0, 8), fast.double.region, 's3')).update(policy).digest('hex');
  const fields: Record<string, string> = { key: 'form.bin', 'x-amz-algorithm': 'AWS4-HMAC-SHA256', 'x-amz-credential': credential, 'x-amz-date': date, policy, 'x-amz-signature': signature };
  let body = '';
  for (const [k, v] of Object.entries(fields)) body += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
  body += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nhello\r\n--${boundary}--\r\n`;
  const url = new URL(fast.proxy.endpoint);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: url.hostname, port: url.port, method: 'POST', path: `/${bucket}`, ca: fast.proxy.caPem, agent: false, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } },
      (res) => resolve(res.resume().statusCode ?? 0),
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('a browser form with a bad signature counts as an authentication failure; a good one as a plain write', async () => {
  assert.equal(await delta(metrics.authFailures, { code: 'SignatureDoesNotMatch' }, async () => assert.equal(await postForm('not-the-secret'), 403)), 1);
  assert.equal(await delta(metrics.objectRequests, { operation: 'PostObject', mode: 'plain' }, async () => assert.ok((await postForm(fast.double.secretAccessKey)) < 300)), 1);
});

test('the access line names the S3 error code of a store\'s answer passed through', async () => {
  const since = fast.proxy.logs.length;
  await rejectsWith(fast.s3.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: 'no-such-object', Tagging: { TagSet: [{ Key: 'a', Value: 'b' }] } })), 'NoSuchKey', 404);
  const line = await logLine(fast.proxy, since, 'ObjectSubresource');
  assert.equal(line.status, 404);
  assert.equal(line.code, 'NoSuchKey');
});

test('a read of a tampered or truncated stored object counts an integrity failure', async () => {
  const k = newKey();
  const data = randomBytes(200_000);
  await fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tampered', Body: data, ...sse(k) }));
  await fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'short', Body: data, ...sse(k) }));
  await fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tampered-late', Body: data, ...sse(k) }));
  const stored = fast.double.objects.get(bucket, 'tampered')!;
  stored.body = Buffer.from(stored.body);
  stored.body[100]! ^= 1;
  // In the last chunk: found after the answer's headers went out (the body is cut).
  const late = fast.double.objects.get(bucket, 'tampered-late')!;
  late.body = Buffer.from(late.body);
  late.body[late.body.length - 1000]! ^= 1;
  const short = fast.double.objects.get(bucket, 'short')!;
  short.body = short.body.subarray(0, 70_000);
  const read = (key: string) => async () => {
    try {
      await (await fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...sse(k) }))).Body!.transformToByteArray();
    } catch {
      /* the read fails: what is counted is the point */
    }
  };
  const total = async () => (await metrics.integrityFailures.get()).values.reduce((n, v) => n + v.value, 0);
  // The SDK retries a 500: every failed read is counted, each with its access line.
  const failedReads = (since: number, key: string) => fast.proxy.logs.slice(since).filter((l) => l.key === key && Number(l.status) >= 500).length;
  let since = fast.proxy.logs.length;
  const flipped = await delta(metrics.integrityFailures, { code: 'ChunkAuthFailed' }, read('tampered'));
  assert.ok(flipped >= 1);
  assert.equal(flipped, failedReads(since, 'tampered'));
  since = fast.proxy.logs.length;
  const before = await total();
  await read('short')();
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(failedReads(since, 'short') >= 1);
  assert.equal(await total(), before + failedReads(since, 'short'), 'the truncated object counted too');
  since = fast.proxy.logs.length;
  const cut = await delta(metrics.integrityFailures, { code: 'ChunkAuthFailed' }, read('tampered-late'));
  assert.ok(cut >= 1, 'a failure in the middle of the body counted');
  assert.equal(cut, failedReads(since, 'tampered-late'));
});

test('KMS calls are counted by operation and outcome', async () => {
  assert.equal(
    await delta(metrics.kmsCalls, { operation: 'generate', outcome: 'ok' }, () =>
      fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'kms-1', Body: 'x', ServerSideEncryption: 'AES256' })),
    ),
    1,
  );
  assert.equal(
    await delta(metrics.kmsCalls, { operation: 'decrypt', outcome: 'ok' }, () => fast.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'kms-1' }))),
    1,
  );
  assert.equal(
    await delta(metrics.kmsCalls, { operation: 'generate', outcome: 'Disabled' }, () =>
      fast.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'kms-2', Body: 'x', ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'off-key' })).catch(() => {}),
    ),
    1,
  );
});

test('saturation: upload slots in use and their maximum, open connections', async () => {
  assert.equal(await value(metrics.uploadSlotsMax), 7);
  const inUse = await value(metrics.uploadSlots);
  const k = newKey();
  const req = await openSsecPut({ endpoint: fast.proxy.endpoint, caPem: fast.proxy.caPem }, fast.double, `/${bucket}/slow`, k, 100_000);
  const answered = new Promise<number>((resolve) => req.on('response', (res) => resolve(res.resume().statusCode ?? 0)));
  req.write(randomBytes(1000));
  // The slot is taken once the headers passed every check; wait for it rather than for a time.
  for (let i = 0; i < 200 && (await value(metrics.uploadSlots)) === inUse; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(await value(metrics.uploadSlots), inUse + 1);
  assert.ok((await value(metrics.connections)) >= 1);
  assert.ok((await value(metrics.connectionsMax)) >= 800);
  req.end(randomBytes(99_000));
  assert.equal(await answered, 200);
  for (let i = 0; i < 200 && (await value(metrics.uploadSlots)) !== inUse; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(await value(metrics.uploadSlots), inUse);
});
