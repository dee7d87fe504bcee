/**
 * A real KMIP server for tests: PyKMIP's `pykmip-server` (Debian's python3-pykmip, installed by scripts/test.sh)
 * on a loopback port, with a CA, a server certificate and a client certificate made by the openssl CLI in a
 * temp dir, and its SQLite database there too. It can be stopped (an outage), paused (a hang: SIGSTOP) and
 * started again on the same port and database. A missing package is a failure, never a skip.
 *
 * Operators' actions (create, rotate, revoke, destroy, re-register) go through the proxy's own KMIP client with
 * the same client certificate: PyKMIP lets only an object's owner (the certificate's CN) use it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appInfoAttribute, KmipClient, nameAttribute, State } from '../../src/kms/kmip-client.ts';
import { KMIP_VERSION_NAMESPACE } from '../../src/kms/kmip.ts';
import { freePort } from './net.ts';

export const PYKMIP_SERVER = '/usr/bin/pykmip-server';

export interface KmipServer {
  readonly host: string;
  readonly port: number;
  /** PEM paths. */
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The env of a proxy using this server (SSEC_PROXY_KMS_KMIP_*), default key `defaultKey`. */
  env(defaultKey: string): Record<string, string>;
  /** An admin client (the proxy's identity). */
  readonly admin: KmipClient;
  /** A new active AES-256 master key version named `name`; its Unique Identifier. */
  createKey(name: string, version?: number, material?: Buffer): Promise<string>;
  /** Revokes every active version of `name` (KMIP: Deactivated, for good). */
  revokeKey(name: string): Promise<void>;
  /** Revokes (if active) and destroys every version of `name`. */
  destroyKey(name: string): Promise<void>;
  /** Re-registers each deactivated version of `name` with its own key bytes (Get), named and versioned as before, active. */
  reinstateKey(name: string): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** CA, server (IP 127.0.0.1) and client (clientAuth, CN ssec-proxy) certificates, P-256: ca.pem, server.pem/.key, client.pem/.key. */
export function makeKmipCerts(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=ssec-test-kmip-ca'], dir);
  for (const [name, cn, ext] of [
    ['server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'],
    ['client', 'ssec-proxy', 'extendedKeyUsage=clientAuth\n'],
  ] as const) {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir);
  }
}

function signal(c: ChildProcess, name: NodeJS.Signals): void {
  try {
    process.kill(-c.pid!, name);
  } catch {
    // gone already
  }
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startKmipServer(): Promise<KmipServer> {
  if (!existsSync(PYKMIP_SERVER)) throw new Error(`${PYKMIP_SERVER} is missing: install Debian's python3-pykmip (scripts/test.sh does)`);
  const dir = mkdtempSync(join(tmpdir(), 'ssec-kmip-'));
  makeKmipCerts(dir);
  const port = await freePort();
  const conf = join(dir, 'server.conf');
  writeFileSync(
    conf,
    [
      '[server]',
      'hostname=127.0.0.1',
      `port=${port}`,
      `certificate_path=${join(dir, 'server.pem')}`,
      `key_path=${join(dir, 'server.key')}`,
      `ca_path=${join(dir, 'ca.pem')}`,
      'auth_suite=TLS1.2',
      `policy_path=${dir}`,
      'enable_tls_client_auth=True',
      `database_path=${join(dir, 'pykmip.db')}`,
      'logging_level=INFO',
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const start = async () => {
    const c = spawn('/usr/bin/python3', [PYKMIP_SERVER, '-f', conf, '-l', join(dir, 'server.log')], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    c.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child = c;
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    c.unref();
    // Detached (its own process group), so it would outlive a test process that exits without close().
    const reap = () => signal(c, 'SIGKILL');
    process.once('exit', reap);
    c.once('exit', () => process.off('exit', reap));
    for (let i = 0; i < 300; i++) {
      if (c.exitCode !== null) break;
      if (await portOpen(port)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    signal(c, 'SIGKILL');
    const log = existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8').slice(-2000) : '';
    throw new Error(`pykmip-server did not start on 127.0.0.1:${port}\n${stderr}\n${log}`);
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    // Its process group: the server and its policy monitor (a multiprocessing child holding our stderr pipe).
    signal(c, 'SIGKILL');
    await exited;
    c.stderr!.destroy();
  };
  await start();
  const admin = new KmipClient({
    host: '127.0.0.1',
    port,
    ca: readFileSync(join(dir, 'ca.pem')),
    cert: readFileSync(join(dir, 'client.pem')),
    key: readFileSync(join(dir, 'client.key')),
    timeoutMs: 10_000,
  });
  const versionsOf = async (name: string) => Promise.all((await admin.locate(name)).map((uid) => admin.attributes(uid)));
  const server: KmipServer = {
    host: '127.0.0.1',
    port,
    caFile: join(dir, 'ca.pem'),
    certFile: join(dir, 'client.pem'),
    keyFile: join(dir, 'client.key'),
    env: (defaultKey) => ({
      SSEC_PROXY_KMS_KMIP_ENDPOINT: `127.0.0.1:${port}`,
      SSEC_PROXY_KMS_KMIP_CA_FILE: join(dir, 'ca.pem'),
      SSEC_PROXY_KMS_KMIP_CERT_FILE: join(dir, 'client.pem'),
      SSEC_PROXY_KMS_KMIP_KEY_FILE: join(dir, 'client.key'),
      SSEC_PROXY_KMS_DEFAULT_KEY: defaultKey,
    }),
    admin,
    async createKey(name, version = 1, material) {
      const attrs = [nameAttribute(name), appInfoAttribute(KMIP_VERSION_NAMESPACE, String(version))];
      const uid = material ? await admin.register(material, attrs) : await admin.create(attrs);
      await admin.activate(uid);
      return uid;
    },
    async revokeKey(name) {
      for (const k of await versionsOf(name)) if (k.state === State.Active) await admin.revoke(k.uid);
    },
    async destroyKey(name) {
      for (const k of await versionsOf(name)) {
        if (k.state === State.Active) await admin.revoke(k.uid);
        await admin.destroy(k.uid);
      }
    },
    async reinstateKey(name) {
      for (const k of await versionsOf(name)) {
        if (k.state !== State.Deactivated) continue;
        const material = await admin.get(k.uid);
        const version = k.appInfo.find(([ns]) => ns === KMIP_VERSION_NAMESPACE)?.[1] ?? '1';
        await server.createKey(name, Number(version), material);
        material.fill(0);
      }
    },
    stop,
    start,
    pause: () => child && signal(child, 'SIGSTOP'),
    resume: () => child && signal(child, 'SIGCONT'),
    async close() {
      admin.close();
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/** A random name no other test uses. */
export const keyName = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
