/**
 * Issue 11 item 3: PostObject authenticates its form before reading the file. A form signed with an unknown
 * key (or a bad signature, or an expired policy) is answered while the client is still sending its file: the
 * proxy never reads, let alone buffers, a file it was not asked for by a known credential.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import { deriveSigningKey } from '../../src/sigv4/canonical.ts';
import { startFast, type Fast } from './harness.ts';

let fast: Fast;
const bucket = 'posts';
before(async () => {
  fast = await startFast({ buckets: [bucket] });
});
after(async () => fast.close());

const boundary = '----s3ssecproxytest';

/** The form's fields, signed with `secret` for `accessKeyId`, up to the start of the file part. */
function formHead(accessKeyId: string, secret: string, expiresInMs: number): string {
  const date = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  const day = date.slice(0, 8);
  const credential = `${accessKeyId}/${day}/${fast.double.region}/s3/aws4_request`;
  const policy = Buffer.from(
    JSON.stringify({
      expiration: new Date(Date.now() + expiresInMs).toISOString(),
      conditions: [{ bucket }, ['starts-with', '$key', ''], { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' }, { 'x-amz-credential': credential }, { 'x-amz-date': date }],
    }),
  ).toString('base64');
  const signature = createHmac('sha256', deriveSigningKey(secret, day, fast.double.region, 's3')).update(policy).digest('hex');
  const fields: Record<string, string> = { key: 'uploads/big.bin', 'x-amz-algorithm': 'AWS4-HMAC-SHA256', 'x-amz-credential': credential, 'x-amz-date': date, policy, 'x-amz-signature': signature };
  let head = '';
  for (const [k, v] of Object.entries(fields)) head += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
  return head + `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
}

/** Sends the fields and 1 MiB of a 200 MiB file, then waits: the status, if the proxy answers meanwhile. */
function postWithoutFinishing(head: string): Promise<number | 'no answer'> {
  const url = new URL(fast.proxy.endpoint);
  const total = Buffer.byteLength(head) + 200 * 1024 * 1024 + Buffer.byteLength(`\r\n--${boundary}--\r\n`);
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: `/${bucket}`,
        ca: fast.proxy.caPem,
        agent: false,
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(total) },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      },
    );
    req.on('error', () => {});
    req.write(head);
    req.write(Buffer.alloc(1024 * 1024));
    setTimeout(() => {
      resolve('no answer');
      req.destroy();
    }, 3000);
  });
}

describe('PostObject refuses before reading the file', () => {
  test('an unknown access key: 403 while the file is still coming', async () => {
    assert.equal(await postWithoutFinishing(formHead('AKUNKNOWN', 'nope', 60_000)), 403);
  });

  test('a wrong signature: 403 while the file is still coming', async () => {
    assert.equal(await postWithoutFinishing(formHead(fast.double.accessKeyId, 'not-the-secret', 60_000)), 403);
  });

  test('an expired policy: 403 while the file is still coming', async () => {
    assert.equal(await postWithoutFinishing(formHead(fast.double.accessKeyId, fast.double.secretAccessKey, -60_000)), 403);
  });

  test('nothing was stored', () => {
    assert.equal(fast.double.objects.get(bucket, 'uploads/big.bin'), undefined);
  });
});

describe('an authenticated form with a large file', () => {
  test('is stored whole, held on disk (encrypted) while it arrives, and the spool is gone afterwards', async () => {
    const { readdirSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const spools = () => readdirSync(tmpdir()).filter((n) => n.startsWith('s3-ssec-proxy-spool-')).length;
    const before = spools();
    const head = formHead(fast.double.accessKeyId, fast.double.secretAccessKey, 60_000);
    const file = Buffer.alloc(20 * 1024 * 1024, 7);
    const body = Buffer.concat([Buffer.from(head), file, Buffer.from(`\r\n--${boundary}--\r\n`)]);
    const url = new URL(fast.proxy.endpoint);
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        { host: url.hostname, port: url.port, method: 'POST', path: `/${bucket}`, ca: fast.proxy.caPem, agent: false, headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(body.length) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(status, 204);
    const stored = fast.double.objects.get(bucket, 'uploads/big.bin')!;
    assert.equal(stored.body.length, file.length);
    assert.ok(stored.body.equals(file));
    // The spool is removed as the handler ends, just after the answer.
    for (let i = 0; i < 50 && spools() !== before; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(spools(), before, 'the spool directory was removed');
  });
});

describe('a form that stops arriving', () => {
  test('half a field, then silence: S3\'s 400 RequestTimeout after SSEC_PROXY_BODY_IDLE_SECONDS, the connection freed (also with anonymous access off)', async () => {
    const { startTestProxy } = await import('../support/proxy.ts');
    const strict = await startTestProxy(fast.double, { SSEC_PROXY_BODY_IDLE_SECONDS: '1', SSEC_PROXY_ALLOW_ANONYMOUS: 'false' });
    try {
      const url = new URL(strict.endpoint);
      const req = https.request({
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: `/${bucket}`,
        ca: strict.caPem,
        agent: false,
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': '100000' },
      });
      req.on('error', () => {});
      req.write(`--${boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\nhal`);
      const answer = await new Promise<{ status: number; body: string }>((resolve) => {
        req.on('response', (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        setTimeout(() => resolve({ status: 0, body: 'no answer in 10 s' }), 10_000);
      });
      req.destroy();
      assert.equal(answer.status, 400, answer.body);
      assert.match(answer.body, /<Code>RequestTimeout<\/Code>/);
    } finally {
      await strict.close();
    }
  });
});
