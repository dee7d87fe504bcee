/**
 * Zero-config TLS: a local development CA and a server certificate it signs.
 *
 * `ensureDevCertificate(stateDir)` keeps, under `stateDir/tls/`:
 *
 * | file        | what                                                  | mode |
 * |-------------|-------------------------------------------------------|------|
 * | ca.pem      | the development CA (CA:true, keyCertSign) — trust it  | 0644 |
 * | ca-key.pem  | the CA's private key                                  | 0600 |
 * | cert.pem    | the server certificate followed by the CA (full chain)| 0644 |
 * | key.pem     | the server certificate's private key                  | 0600 |
 *
 * Clients trust `ca.pem`: aws-cli `--ca-bundle ca.pem` or `AWS_CA_BUNDLE=ca.pem`, Node
 * `new https.Agent({ ca: caPem })`, curl `--cacert ca.pem`. Never `NODE_TLS_REJECT_UNAUTHORIZED=0`.
 *
 * Existing files are reused while they are consistent (keys match, leaf signed by the CA), valid
 * for more than {@link MIN_REMAINING_MS} and cover every requested host. A still-valid CA is kept
 * when only the leaf needs re-issuing, so a CA the user already trusts stays trusted.
 *
 * Keys are ECDSA P-256 with SHA-256 signatures (fast to generate, accepted by every TLS client we
 * test with). Certificates are built with `@peculiar/x509` (the library `selfsigned` wraps) because
 * `selfsigned` cannot add Subject/Authority Key Identifiers, without which OpenSSL's strict
 * verification (`openssl verify -x509_strict`, Python 3.13+'s default `VERIFY_X509_STRICT`, so
 * newer aws-cli/boto3) rejects the chain.
 */
import { KeyObject, X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** Hosts every development certificate covers. */
export const DEFAULT_DEV_CERT_HOSTS: readonly string[] = Object.freeze(['127.0.0.1', '::1', 'localhost']);

/** Files are regenerated when they expire within this window (7 days). */
export const MIN_REMAINING_MS = 7 * 24 * 60 * 60 * 1000;

const DAY_MS = 24 * 60 * 60 * 1000;
/** Lifetime of a newly created development CA (5 years). */
const CA_LIFETIME_MS = 5 * 365 * DAY_MS;
/** Lifetime of a newly issued server certificate (397 days, the public-web maximum). */
const LEAF_LIFETIME_MS = 397 * DAY_MS;
/** Backdating of notBefore, to tolerate small clock differences between hosts. */
const BACKDATE_MS = 60 * 60 * 1000;

export interface DevCertificate {
  /** `stateDir/tls/cert.pem`: server certificate followed by the CA certificate. */
  certPath: string;
  /** `stateDir/tls/key.pem`: server private key (PKCS#8 PEM, mode 0600). */
  keyPath: string;
  /** `stateDir/tls/ca.pem`: the CA certificate clients must trust. */
  caPath: string;
  /** Contents of cert.pem (leaf first, then the CA). */
  certPem: string;
  /** Contents of key.pem. */
  keyPem: string;
  /** Contents of ca.pem. */
  caPem: string;
  /** True when this call wrote a new server certificate (false: the existing files were reused). */
  created: boolean;
}

export interface DevCertificateOptions {
  /** Clock, for tests of expiry and renewal. @default Date.now */
  now?: () => number;
}

/**
 * Makes sure `stateDir/tls/` holds a development CA and a server certificate it signed for
 * 127.0.0.1, ::1, localhost and `hosts` (IP addresses, DNS names, or `*.domain` wildcards), and
 * returns their paths and contents.
 *
 * @param stateDir directory for the proxy's state; `tls/` is created in it (mode 0700)
 * @param hosts extra subject alternative names besides {@link DEFAULT_DEV_CERT_HOSTS}
 * @param options see {@link DevCertificateOptions}
 */
export async function ensureDevCertificate(
  stateDir: string,
  hosts: readonly string[] = [],
  options: DevCertificateOptions = {},
): Promise<DevCertificate> {
  const wanted = normalizeHosts([...DEFAULT_DEV_CERT_HOSTS, ...hosts]);
  const dir = join(stateDir, 'tls');
  const caPath = join(dir, 'ca.pem');
  const caKeyPath = join(dir, 'ca-key.pem');
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const unlock = await lock(join(dir, '.lock'));
  try {
    return await ensureLocked({ caPath, caKeyPath, certPath, keyPath }, wanted, (options.now ?? Date.now)());
  } finally {
    await unlock();
  }
}

async function ensureLocked(
  paths: { caPath: string; caKeyPath: string; certPath: string; keyPath: string },
  wanted: Hosts,
  now: number,
): Promise<DevCertificate> {
  const { caPath, caKeyPath, certPath, keyPath } = paths;
  const [caPemOld, caKeyPemOld, certPemOld, keyPemOld] = await Promise.all(
    [caPath, caKeyPath, certPath, keyPath].map(readIfExists),
  );

  let ca: { cert: string; key: string } | undefined;
  if (caPemOld !== undefined && caKeyPemOld !== undefined && caStillUsable(caPemOld, caKeyPemOld, now)) {
    ca = { cert: caPemOld, key: caKeyPemOld };
    if (
      certPemOld !== undefined &&
      keyPemOld !== undefined &&
      leafStillUsable(certPemOld, keyPemOld, caPemOld, wanted, now)
    ) {
      await Promise.all([chmod(caKeyPath, 0o600), chmod(keyPath, 0o600)]);
      return { certPath, keyPath, caPath, certPem: certPemOld, keyPem: keyPemOld, caPem: caPemOld, created: false };
    }
  }

  if (ca === undefined) {
    ca = await createCa(now);
    // The CA's key first: a crash between the two writes leaves an unusable pair, which the next
    // call replaces, never a ca.pem without its key.
    await writeAtomic(caKeyPath, ca.key, 0o600);
    await writeAtomic(caPath, ca.cert, 0o644);
  }
  const leaf = await createLeaf(ca, wanted, now);
  const certPem = ensureTrailingNewline(leaf.cert) + ensureTrailingNewline(ca.cert);
  await writeAtomic(keyPath, leaf.key, 0o600);
  await writeAtomic(certPath, certPem, 0o644);
  return { certPath, keyPath, caPath, certPem, keyPem: leaf.key, caPem: ca.cert, created: true };
}

/**
 * A throw-away CA and server certificate for tests: {@link ensureDevCertificate} on `dir`.
 * Trust `caPem` in the client; serve `certPem`/`keyPem`.
 */
export async function createTestCa(dir: string, hosts: readonly string[] = []): Promise<DevCertificate> {
  return ensureDevCertificate(dir, hosts);
}

// ---------------------------------------------------------------------------------------------

interface Hosts {
  ips: string[];
  dns: string[];
}

function normalizeHosts(hosts: readonly string[]): Hosts {
  const ips = new Set<string>();
  const dns = new Set<string>();
  for (const raw of hosts) {
    const h = raw.trim().replace(/^\[(.*)\]$/, '$1');
    if (h === '') continue;
    if (isIP(h) !== 0) {
      ips.add(h);
    } else if (/^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$/i.test(h)) {
      dns.add(h.toLowerCase().replace(/\.$/, ''));
    } else {
      throw new TypeError(`ensureDevCertificate: not an IP address or DNS name: ${JSON.stringify(raw)}`);
    }
  }
  return { ips: [...ips], dns: [...dns] };
}

function caStillUsable(caPem: string, caKeyPem: string, now: number): boolean {
  try {
    const ca = new X509Certificate(caPem);
    const key = createPrivateKey(caKeyPem);
    return (
      ca.ca &&
      key.asymmetricKeyType === 'ec' &&
      key.asymmetricKeyDetails?.namedCurve === 'prime256v1' &&
      new x509.X509Certificate(caPem).getExtension(x509.SubjectKeyIdentifierExtension) !== null &&
      Date.parse(ca.validTo) - now > MIN_REMAINING_MS &&
      Date.parse(ca.validFrom) <= now &&
      ca.checkPrivateKey(key) &&
      ca.verify(ca.publicKey)
    );
  } catch {
    return false;
  }
}

function leafStillUsable(certPem: string, keyPem: string, caPem: string, wanted: Hosts, now: number): boolean {
  try {
    const ca = new X509Certificate(caPem);
    const leaf = new X509Certificate(certPem); // the first certificate of the chain
    if (leaf.ca) return false;
    if (Date.parse(leaf.validTo) - now <= MIN_REMAINING_MS || Date.parse(leaf.validFrom) > now) return false;
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return false;
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) return false;
    if (new x509.X509Certificate(certPem).getExtension(x509.AuthorityKeyIdentifierExtension) === null) return false;
    const sans = parseSubjectAltName(leaf.subjectAltName);
    for (const ip of wanted.ips) if (leaf.checkIP(ip) === undefined) return false;
    for (const name of wanted.dns) if (!sans.dns.includes(name)) return false;
    return true;
  } catch {
    return false;
  }
}

/** Parses Node's `X509Certificate.subjectAltName` text ("DNS:a, IP Address:1.2.3.4"). */
function parseSubjectAltName(text: string | undefined): Hosts {
  const out: Hosts = { ips: [], dns: [] };
  if (text === undefined) return out;
  for (const part of text.split(/,\s*/)) {
    if (part.startsWith('DNS:')) out.dns.push(part.slice(4).toLowerCase());
    else if (part.startsWith('IP Address:')) out.ips.push(part.slice(11));
  }
  return out;
}

const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;

async function createCa(now: number): Promise<{ cert: string; key: string }> {
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=s3-ssec-proxy development CA ${randomBytes(4).toString('hex')}, O=s3-ssec-proxy (development only)`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + CA_LIFETIME_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: exportPrivateKeyPem(keys.privateKey) };
}

async function createLeaf(
  ca: { cert: string; key: string },
  hosts: Hosts,
  now: number,
): Promise<{ cert: string; key: string }> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await webcrypto.subtle.importKey(
    'pkcs8',
    createPrivateKey(ca.key).export({ type: 'pkcs8', format: 'der' }),
    KEY_ALGORITHM,
    false,
    ['sign'],
  );
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const commonName = hosts.dns.find((h) => !h.startsWith('*.')) ?? hosts.ips[0] ?? 'localhost';
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${commonName}`,
    issuer: caCert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(Math.min(now + LEAF_LIFETIME_MS, caCert.notAfter.getTime())),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...hosts.dns.map((value) => ({ type: 'dns' as const, value })),
        ...hosts.ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: exportPrivateKeyPem(keys.privateKey) };
}

function exportPrivateKeyPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** A random positive 128-bit serial number (RFC 5280 §4.1.2.2), as hex. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

const LOCK_STALE_MS = 30_000;
const LOCK_WAIT_MS = 60_000;

/**
 * A directory lock (mkdir is atomic) so that two processes sharing a state directory don't mix
 * the files of two CAs. A lock older than {@link LOCK_STALE_MS} is taken over (its holder died).
 */
async function lock(path: string): Promise<() => Promise<void>> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await mkdir(path);
      return () => rm(path, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const age = await stat(path).then(
      (st) => Date.now() - st.mtimeMs,
      () => 0,
    );
    if (age > LOCK_STALE_MS) {
      await rm(path, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`ensureDevCertificate: ${path} is held by another process`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Writes via a temporary file and rename, so readers never see half a PEM. */
async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, data, { mode, flag: 'wx' });
  await chmod(tmp, mode); // writeFile's mode is filtered by the umask
  await rename(tmp, path);
}

function ensureTrailingNewline(s: string): string {
  return s.endsWith('\n') ? s : `${s}\n`;
}
