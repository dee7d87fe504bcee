/**
 * Operator features: secrets from *_FILE paths, per-credential bucket allow-lists, an https upstream with a
 * private CA, and TLS certificates reloaded when their files change, without dropping connections.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { test } from 'node:test';
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand, CopyObjectCommand } from '@aws-sdk/client-s3';
import { loadConfig } from '../../src/config.ts';
import { startProxy } from '../../src/server.ts';
import { ensureDevCertificate } from '../../src/tls/dev-cert.ts';
import { Upstream } from '../../src/upstream.ts';
import { clientSigner, errorCode, rawRequest, rgwUpstream, startTestProxy } from '../support/proxy.ts';

test('secrets come from *_FILE paths (trailing newline dropped); a missing file is a listed problem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssec-files-'));
  writeFileSync(join(dir, 'sk'), 'from-a-file\n');
  const c = loadConfig({
    env: {
      SSEC_PROXY_UPSTREAM_URL: 'http://127.0.0.1:1',
      SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'AK',
      SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY_FILE: join(dir, 'sk'),
    },
  });
  assert.equal(c.upstream?.secretAccessKey, 'from-a-file');
  assert.throws(
    () =>
      loadConfig({
        env: { SSEC_PROXY_UPSTREAM_URL: 'http://127.0.0.1:1', SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'AK', SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY_FILE: join(dir, 'nope') },
      }),
    /SECRET_ACCESS_KEY_FILE/,
  );
});

test('a credential with a bucket allow-list reaches only those buckets (copy sources too)', async () => {
  const up = await rgwUpstream();
  const dir = mkdtempSync(join(tmpdir(), 'ssec-allow-'));
  const allowed = `team-a-${randomBytes(3).toString('hex')}`;
  const other = `team-b-${randomBytes(3).toString('hex')}`;
  writeFileSync(join(dir, 'creds.json'), JSON.stringify([{ accessKeyId: 'TEAMA', secretAccessKey: 'team-a-secret', buckets: ['team-a-*'] }, { accessKeyId: 'ADMIN', secretAccessKey: 'admin-secret' }]));
  const t = await startTestProxy(up, { SSEC_PROXY_CREDENTIALS_FILE: join(dir, 'creds.json') });
  try {
    const admin = t.client({ accessKeyId: 'ADMIN', secretAccessKey: 'admin-secret' });
    await admin.send(new CreateBucketCommand({ Bucket: allowed }));
    await admin.send(new CreateBucketCommand({ Bucket: other }));
    await admin.send(new PutObjectCommand({ Bucket: other, Key: 'secret', Body: 'b' }));
    const team = t.client({ accessKeyId: 'TEAMA', secretAccessKey: 'team-a-secret' });
    await team.send(new PutObjectCommand({ Bucket: allowed, Key: 'x', Body: 'a' }));
    assert.equal((await team.send(new ListObjectsV2Command({ Bucket: allowed }))).KeyCount, 1);
    await assert.rejects(team.send(new ListObjectsV2Command({ Bucket: other })), (e: Error) => e.name === 'AccessDenied');
    await assert.rejects(team.send(new CopyObjectCommand({ Bucket: allowed, Key: 'stolen', CopySource: `${other}/secret` })), (e: Error) => e.name === 'AccessDenied');
    const raw = await rawRequest(t, { accessKeyId: 'TEAMA', secretAccessKey: 'team-a-secret', region: up.region }, { method: 'GET', path: `/${other}/secret` });
    assert.equal(raw.status, 403);
    assert.equal(errorCode(raw.body), 'AccessDenied');
  } finally {
    await t.close();
  }
});

test('an https upstream with a private CA is trusted through SSEC_PROXY_UPSTREAM_CA_FILE', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssec-upca-'));
  const cert = await ensureDevCertificate(dir);
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (_req, res) => res.end('<ListAllMyBucketsResult/>'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  try {
    const trusting = new Upstream(url, 'us-east-1', { ca: cert.caPem });
    const r = await trusting.request({ identity: { accessKeyId: 'a', secretAccessKey: 'b' }, method: 'GET', path: '/' });
    assert.equal(r.statusCode, 200);
    await r.body.dump();
    await trusting.close();
    const strict = new Upstream(url, 'us-east-1');
    await assert.rejects(strict.request({ identity: { accessKeyId: 'a', secretAccessKey: 'b' }, method: 'GET', path: '/' }));
    await strict.close();
    const c = loadConfig({ env: { SSEC_PROXY_UPSTREAM_URL: url, SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'a', SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: 'b', SSEC_PROXY_UPSTREAM_CA_FILE: cert.caPath } });
    assert.match(c.upstreamCa ?? '', /BEGIN CERTIFICATE/);
  } finally {
    server.close();
  }
});

test('replaced certificate files are served to new connections; open connections keep working', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssec-reload-'));
  const first = await ensureDevCertificate(join(dir, 'first'));
  const second = await ensureDevCertificate(join(dir, 'second'));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  copyFileSync(first.certPath, certPath);
  copyFileSync(first.keyPath, keyPath);
  const config = loadConfig({ env: { SSEC_PROXY_LISTEN: '127.0.0.1:0', SSEC_PROXY_UPSTREAM_URL: 'http://127.0.0.1:1', SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'a', SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: 'b' } });
  const upstream = new Upstream('http://127.0.0.1:1', 'us-east-1');
  const proxy = await startProxy({ config, upstream, tls: { cert: first.certPem, key: first.keyPem }, tlsFiles: { cert: certPath, key: keyPath }, log: () => {} });
  const handshake = (ca: string) =>
    new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: proxy.httpsPort, ca }, () => {
        resolve('ok');
        s.end();
      });
      s.on('error', (e) => resolve(e.message));
    });
  try {
    assert.equal(await handshake(first.caPem), 'ok');
    const open = connect({ host: '127.0.0.1', port: proxy.httpsPort, ca: first.caPem });
    let openError: Error | undefined;
    open.on('error', (e) => (openError = e));
    await new Promise((r) => open.once('secureConnect', r));
    copyFileSync(second.keyPath, keyPath);
    copyFileSync(second.certPath, certPath);
    let now = '';
    for (let i = 0; i < 40 && now !== 'ok'; i++) {
      await new Promise((r) => setTimeout(r, 250));
      now = await handshake(second.caPem);
    }
    assert.equal(now, 'ok', 'new connections get the new certificate');
    assert.notEqual(await handshake(first.caPem), 'ok');
    assert.equal(openError, undefined, 'the open connection was not dropped');
    assert.ok(!open.destroyed, 'the open connection was not dropped');
    open.end();
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('plain HTTP listener: SSE-C refused by default, accepted from loopback with the switch, or from a trusted TLS-terminating peer', async () => {
  const { newKey, ssecHeaders } = await import('../support/proxy.ts');
  const up = await rgwUpstream();
  const key = newKey();
  const bucket = `plain-http-${randomBytes(3).toString('hex')}`;
  const put = async (port: number, extra: Record<string, string>) => {
    const signer = clientSigner(up);
    const signed = await signer.sign({
      method: 'PUT',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port,
      path: `/${bucket}/o`,
      query: {},
      headers: { host: `127.0.0.1:${port}`, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'content-length': '5', ...ssecHeaders(key), ...extra },
    });
    const r = await fetch(`http://127.0.0.1:${port}/${bucket}/o`, { method: 'PUT', headers: signed.headers as Record<string, string>, body: 'hello' });
    return { status: r.status, code: errorCode(await r.text()) };
  };
  for (const [env, extra, expected] of [
    [{}, {}, 400],
    [{ SSEC_PROXY_ALLOW_SSEC_OVER_LOOPBACK_HTTP: 'true' }, {}, 200],
    [{ SSEC_PROXY_TRUSTED_PROXIES: '127.0.0.1' }, {}, 400],
    [{ SSEC_PROXY_TRUSTED_PROXIES: '127.0.0.1' }, { 'x-forwarded-proto': 'https' }, 200],
  ] as const) {
    const t = await startTestProxy(up, { SSEC_PROXY_HTTP_LISTEN: '127.0.0.1:0', ...env });
    try {
      await t.client().send(new CreateBucketCommand({ Bucket: bucket })).catch(() => {});
      const r = await put(t.proxy.httpPort!, extra);
      assert.equal(r.status, expected, `${JSON.stringify(env)} ${JSON.stringify(extra)}: ${r.code}`);
      if (expected === 400) assert.equal(r.code, 'InvalidRequest');
    } finally {
      await t.close();
    }
  }
});
