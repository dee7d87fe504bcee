import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { MIN_REMAINING_MS, createTestCa, ensureDevCertificate, type DevCertificate } from '../../src/tls/dev-cert.ts';

const DAY = 24 * 60 * 60 * 1000;

/** Serves `cert` on `host`, port 0; resolves with the server and its port. */
async function serve(cert: DevCertificate, host: string): Promise<{ server: https.Server; port: number }> {
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (_req, res) => {
    res.end('ok');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}

/** One GET with a fresh agent (no session reuse); resolves with the body or rejects with the TLS error. */
function get(options: https.RequestOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get({ ...options, agent: new https.Agent({ keepAlive: false }), path: '/' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

async function closeServer(server: https.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('ensureDevCertificate', () => {
  let dir: string;
  let cert: DevCertificate;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dev-cert-'));
    cert = await ensureDevCertificate(dir);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes ca.pem, ca-key.pem, cert.pem and key.pem under stateDir/tls, keys 0600', async () => {
    assert.equal(cert.created, true);
    assert.equal(cert.caPath, join(dir, 'tls', 'ca.pem'));
    assert.equal(cert.certPath, join(dir, 'tls', 'cert.pem'));
    assert.equal(cert.keyPath, join(dir, 'tls', 'key.pem'));
    assert.equal(await readFile(cert.caPath, 'utf8'), cert.caPem);
    assert.equal(await readFile(cert.certPath, 'utf8'), cert.certPem);
    assert.equal(await readFile(cert.keyPath, 'utf8'), cert.keyPem);
    assert.equal((await stat(cert.keyPath)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'tls', 'ca-key.pem'))).mode & 0o777, 0o600);
  });

  it('makes a CA (CA:true, keyCertSign) and a leaf it signed for 127.0.0.1, ::1 and localhost', () => {
    const ca = new X509Certificate(cert.caPem);
    const leaf = new X509Certificate(cert.certPem);
    assert.equal(ca.ca, true);
    assert.equal(leaf.ca, false);
    assert.ok(leaf.checkIssued(ca));
    assert.ok(leaf.verify(ca.publicKey));
    assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(leaf.checkIP('::1'), '::1');
    assert.equal(leaf.checkHost('localhost'), 'localhost');
    assert.equal(leaf.checkHost('example.com'), undefined);
    // cert.pem is the full chain: leaf, then the CA
    const pems = cert.certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    assert.equal(pems.length, 2);
    assert.equal(fingerprint(pems[1]!), ca.fingerprint256);
  });

  it('passes OpenSSL strict verification (key identifiers present, as Python 3.13+ requires)', async () => {
    const { stdout } = await promisify(execFile)('openssl', [
      'verify',
      '-x509_strict',
      '-purpose',
      'sslserver',
      '-CAfile',
      cert.caPath,
      cert.certPath,
    ]);
    assert.match(stdout, /: OK$/m);
    const { stdout: caText } = await promisify(execFile)('openssl', ['x509', '-in', cert.caPath, '-noout', '-text']);
    assert.match(caText, /CA:TRUE/);
    assert.match(caText, /Certificate Sign/);
  });

  it('serves TLS that a client trusting only ca.pem accepts for 127.0.0.1 and localhost', async () => {
    const { server, port } = await serve(cert, '127.0.0.1');
    try {
      assert.equal(await get({ host: '127.0.0.1', port, ca: cert.caPem }), 'ok');
      assert.equal(await get({ host: '127.0.0.1', port, ca: cert.caPem, servername: 'localhost' }), 'ok');
      assert.equal(await get({ host: 'localhost', port, ca: cert.caPem, family: 4 }), 'ok');
      // without the CA: rejected
      await assert.rejects(get({ host: '127.0.0.1', port }), (err: NodeJS.ErrnoException) => {
        assert.match(String(err.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED/);
        return true;
      });
      // a name the certificate does not cover: rejected
      await assert.rejects(get({ host: '127.0.0.1', port, ca: cert.caPem, servername: 'example.com' }), {
        code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      });
    } finally {
      await closeServer(server);
    }
  });

  it('serves TLS for ::1 when the host has IPv6 loopback', async (t) => {
    let served: { server: https.Server; port: number };
    try {
      served = await serve(cert, '::1');
    } catch (err) {
      t.skip(`no IPv6 loopback here: ${(err as Error).message}`);
      return;
    }
    try {
      assert.equal(await get({ host: '::1', port: served.port, ca: cert.caPem }), 'ok');
    } finally {
      await closeServer(served.server);
    }
  });

  it('reuses the files on a second call (same fingerprints)', async () => {
    const again = await ensureDevCertificate(dir);
    assert.equal(again.created, false);
    assert.equal(fingerprint(again.certPem), fingerprint(cert.certPem));
    assert.equal(fingerprint(again.caPem), fingerprint(cert.caPem));
    assert.equal(again.keyPem, cert.keyPem);
  });

  it('re-issues only the leaf, under the same CA, when new hosts are asked for', async () => {
    const wider = await ensureDevCertificate(dir, ['*.s3.example.test', 'proxy.example.test', '10.9.8.7']);
    assert.equal(wider.created, true);
    assert.equal(fingerprint(wider.caPem), fingerprint(cert.caPem));
    assert.notEqual(fingerprint(wider.certPem), fingerprint(cert.certPem));
    const leaf = new X509Certificate(wider.certPem);
    assert.equal(leaf.checkHost('bucket.s3.example.test'), '*.s3.example.test');
    assert.equal(leaf.checkHost('proxy.example.test'), 'proxy.example.test');
    assert.equal(leaf.checkIP('10.9.8.7'), '10.9.8.7');
    assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
    // the same hosts again (any order, any case): reused
    const same = await ensureDevCertificate(dir, ['10.9.8.7', 'PROXY.example.test', '*.s3.example.test']);
    assert.equal(same.created, false);
    assert.equal(fingerprint(same.certPem), fingerprint(wider.certPem));
    // a subset of the hosts is still covered: reused
    const subset = await ensureDevCertificate(dir, ['proxy.example.test']);
    assert.equal(subset.created, false);
  });

  it('renews the leaf within 7 days of its expiry, and the CA within 7 days of its own', async () => {
    const current = await ensureDevCertificate(dir);
    const leafEnd = Date.parse(new X509Certificate(current.certPem).validTo);
    const caEnd = Date.parse(new X509Certificate(current.caPem).validTo);

    const stillFine = await ensureDevCertificate(dir, [], { now: () => leafEnd - MIN_REMAINING_MS - DAY });
    assert.equal(stillFine.created, false);

    const renewedLeaf = await ensureDevCertificate(dir, [], { now: () => leafEnd - MIN_REMAINING_MS + DAY });
    assert.equal(renewedLeaf.created, true);
    assert.equal(fingerprint(renewedLeaf.caPem), fingerprint(current.caPem));
    assert.notEqual(fingerprint(renewedLeaf.certPem), fingerprint(current.certPem));

    const renewedCa = await ensureDevCertificate(dir, [], { now: () => caEnd - MIN_REMAINING_MS + DAY });
    assert.equal(renewedCa.created, true);
    assert.notEqual(fingerprint(renewedCa.caPem), fingerprint(current.caPem));
  });

  it('replaces a damaged key file', async () => {
    const before = await ensureDevCertificate(dir);
    await writeFile(before.keyPath, 'not a key\n');
    const fixed = await ensureDevCertificate(dir);
    assert.equal(fixed.created, true);
    assert.notEqual(fixed.keyPem, 'not a key\n');
    const leaf = new X509Certificate(fixed.certPem);
    assert.equal(leaf.checkIssued(new X509Certificate(fixed.caPem)), true);
  });

  it('rejects a host that is neither an IP address nor a DNS name', async () => {
    await assert.rejects(ensureDevCertificate(dir, ['bad host/name']), TypeError);
  });
});

describe('ensureDevCertificate, concurrent callers', () => {
  it('serializes callers sharing a state directory: one CA, one certificate', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dev-cert-race-'));
    try {
      const results = await Promise.all([1, 2, 3, 4].map(() => ensureDevCertificate(dir)));
      assert.equal(results.filter((r) => r.created).length, 1);
      assert.equal(new Set(results.map((r) => fingerprint(r.caPem))).size, 1);
      assert.equal(new Set(results.map((r) => fingerprint(r.certPem))).size, 1);
      const onDisk = await readFile(join(dir, 'tls', 'cert.pem'), 'utf8');
      assert.equal(fingerprint(onDisk), fingerprint(results[0]!.certPem));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('createTestCa', () => {
  it('makes a CA and certificate in a fresh directory that a TLS client trusting the CA accepts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'test-ca-'));
    try {
      const cert = await createTestCa(dir);
      const { server, port } = await serve(cert, '127.0.0.1');
      try {
        assert.equal(await get({ host: '127.0.0.1', port, ca: cert.caPem, servername: 'localhost' }), 'ok');
      } finally {
        await closeServer(server);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
