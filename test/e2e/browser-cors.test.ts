/**
 * Issue 12 point 3 with a real browser: headless chromium (Debian's, installed by scripts/test.sh) loads a page
 * from another origin that uploads with a presigned SSE-C PUT and reads back with a presigned SSE-C GET through
 * the proxy over Ceph RGW. Chromium itself sends the CORS preflights and enforces the answers: the page sees
 * the upload's ETag and the body only if the proxy carried the store's CORS rules through.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutBucketCorsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { bodyBytes, directClient, newKey, rgwUpstream, sse, ssecHeaders, startTestProxy, type TestProxy, type UpstreamInfo } from '../support/proxy.ts';

const CHROMIUM = '/usr/bin/chromium';
let up: UpstreamInfo;
let t: TestProxy;
let s3: S3Client;
let app: http.Server;
const bucket = `browser-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const key = newKey();

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
  s3 = t.client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
});
after(async () => {
  await t?.close();
  app?.closeAllConnections();
  await new Promise((r) => app?.close(r));
});

/** Runs `script` in a page of a fresh origin in headless chromium; resolves with what the page posts to /result. */
async function inBrowser(script: string): Promise<{ result: Record<string, unknown>; origin: string }> {
  let report: (v: Record<string, unknown>) => void = () => {};
  const reported = new Promise<Record<string, unknown>>((r) => (report = r));
  app = http.createServer((req, res) => {
    if (req.url === '/result') {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        res.end('ok');
        report(JSON.parse(text) as Record<string, unknown>);
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><script>
      (async () => {
        const out = {};
        try { ${script} } catch (e) { out.error = String(e); }
        await fetch('/result', { method: 'POST', body: JSON.stringify(out) });
      })();
    </script>`);
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  await s3.send(
    new PutBucketCorsCommand({
      Bucket: bucket,
      CORSConfiguration: {
        CORSRules: [{ AllowedOrigins: [origin], AllowedMethods: ['GET', 'PUT', 'HEAD'], AllowedHeaders: ['*'], ExposeHeaders: ['ETag', 'x-amz-server-side-encryption-customer-key-MD5'] }],
      },
    }),
  );
  const profile = mkdtempSync(join(tmpdir(), 'ssec-chromium-'));
  // The proxy's certificate comes from the test CA, which this throwaway profile does not trust.
  const browser = spawn(CHROMIUM, ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--ignore-certificate-errors', `--user-data-dir=${profile}`, origin + '/'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  browser.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  try {
    const result = await Promise.race([
      reported,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no result from chromium in 60 s; its stderr:\n${stderr}`)), 60_000)),
    ]);
    return { result, origin };
  } finally {
    browser.kill('SIGKILL');
    rmSync(profile, { recursive: true, force: true });
  }
}

test('chromium uploads and reads an SSE-C object with presigned URLs from another origin (preflights and CORS answers through the proxy)', async () => {
  const text = `browser body ${randomBytes(8).toString('hex')} ` + 'x'.repeat(70_000);
  // Presigned with the SSE-C trio as signed headers (the page sends them; the key is not in the URL).
  const presigner = t.client({ requestChecksumCalculation: 'WHEN_REQUIRED' });
  const unhoistableHeaders = new Set(Object.keys(ssecHeaders(key)).map((h) => h.toLowerCase()));
  const putUrl = await getSignedUrl(presigner, new PutObjectCommand({ Bucket: bucket, Key: 'from-browser.txt', ...sse(key) }), { expiresIn: 300, unhoistableHeaders });
  const getUrl = await getSignedUrl(presigner, new GetObjectCommand({ Bucket: bucket, Key: 'from-browser.txt', ...sse(key) }), { expiresIn: 300, unhoistableHeaders });
  const since = t.logs.length;
  const { result } = await inBrowser(`
    const headers = ${JSON.stringify(ssecHeaders(key))};
    const put = await fetch(${JSON.stringify(putUrl)}, { method: 'PUT', headers, body: ${JSON.stringify(text)} });
    out.putStatus = put.status;
    out.etag = put.headers.get('etag');
    const got = await fetch(${JSON.stringify(getUrl)}, { headers });
    out.getStatus = got.status;
    out.keyMd5 = got.headers.get('x-amz-server-side-encryption-customer-key-md5');
    out.text = await got.text();
  `);
  assert.equal(result.error, undefined, String(result.error));
  assert.equal(result.putStatus, 200);
  assert.match(String(result.etag), /^"[0-9a-f]{32}-0"$/, 'the exposed ETag is readable by the page');
  assert.equal(result.getStatus, 200);
  assert.equal(result.keyMd5, key.md5);
  assert.equal(result.text, text);
  const preflights = t.logs.slice(since).filter((l) => l.op === 'PreflightRequest');
  assert.ok(preflights.length >= 1 && preflights.every((l) => l.status === 200), JSON.stringify(preflights));
  // What the page stored is ciphertext in the store, and plaintext to an SDK client with the key.
  const stored = await bodyBytes((await directClient(up).send(new GetObjectCommand({ Bucket: bucket, Key: 'from-browser.txt' }))).Body);
  assert.ok(!stored.includes(Buffer.from('browser body')));
  const back = await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'from-browser.txt', ...sse(key) }))).Body);
  assert.equal(back.toString(), text);
});
