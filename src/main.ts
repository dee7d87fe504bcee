/**
 * Entry point: parse the command line and configuration, start the listeners, drain on SIGTERM.
 * The only module with process-level effects.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { startEmbeddedS3 } from './embedded-s3.ts';
import { Metrics, startAdmin } from './admin.ts';
import { describeKey, generateKey } from './keygen.ts';
import { startProxy } from './server.ts';
import { ensureDevCertificate } from './tls/dev-cert.ts';
import { Upstream } from './upstream.ts';
import { wipe } from './sse-c/data-key.ts';

const HELP = `s3-ssec-proxy — an S3 proxy that gives any S3 store SSE-C (customer-key) encryption

Usage: s3-ssec-proxy [serve] [--config FILE]
       s3-ssec-proxy check-config [--config FILE]
       s3-ssec-proxy keygen [--passphrase TEXT [--salt BASE64]]
       s3-ssec-proxy --version | --help

Without configuration it serves https://127.0.0.1:8443 with a generated development certificate in front of an
embedded local S3 store. Configuration: README.md ("Configuration").`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function serve(config: Config): Promise<void> {
  const stateDir = resolve(config.stateDir);
  let embedded: Awaited<ReturnType<typeof startEmbeddedS3>> | undefined;
  let effective = config;
  if (!config.upstream) {
    embedded = await startEmbeddedS3({ dir: join(stateDir, 's3') });
    effective = {
      ...config,
      upstream: {
        url: embedded.url,
        region: embedded.region,
        accessKeyId: embedded.accessKeyId,
        secretAccessKey: embedded.secretAccessKey,
      },
      region: config.region,
      probeAllLayouts: true, // s3rver's multipart ETags have no "-N"
      noBucketPolicies: true,
    };
  }
  const up = effective.upstream!;
  let tls: { cert: string | Buffer; key: string | Buffer };
  let caPath: string | undefined;
  if (config.tls) {
    tls = { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) };
  } else {
    const domain = config.virtualHostDomain;
    const dev = await ensureDevCertificate(stateDir, domain ? [domain, `*.${domain}`] : []);
    tls = { cert: dev.certPem, key: dev.keyPem };
    caPath = dev.caPath;
  }
  const metrics = new Metrics();
  const upstream = new Upstream(up.url, up.region, {
    uploadConnections: config.maxConcurrentUploads,
    observer: metrics.upstreamObserver,
    ...(config.upstreamCa ? { ca: config.upstreamCa } : {}),
  });
  const proxy = await startProxy({ config: effective, upstream, tls, metrics, ...(config.tls ? { tlsFiles: config.tls } : {}) });
  const adminIdentity = effective.credentials[0]?.upstream ?? up;
  const admin = config.admin
    ? await startAdmin({ ...config.admin, metrics, upstream, identity: adminIdentity })
    : undefined;
  const endpoint = `https://${config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host}:${proxy.httpsPort}`;
  const lines = [
    `s3-ssec-proxy ${version()} listening on ${endpoint}${proxy.httpPort ? ` and http://${config.http!.host}:${proxy.httpPort}` : ''}`,
    `upstream: ${embedded ? `embedded local S3 store (${up.url}, data in ${join(stateDir, 's3')})` : up.url}`,
    ...(admin ? [`admin: http://${config.admin!.host}:${admin.port}/metrics, /healthz, /readyz`] : []),
  ];
  if (embedded) {
    lines.push(
      '',
      'Try it with aws-cli (credentials of the embedded store):',
      `  export AWS_ACCESS_KEY_ID=${up.accessKeyId} AWS_SECRET_ACCESS_KEY=${up.secretAccessKey} AWS_DEFAULT_REGION=${up.region}`,
      `  export AWS_CA_BUNDLE=${caPath}`,
      '  head -c 32 /dev/urandom > key.bin',
      `  aws --endpoint-url ${endpoint} s3 mb s3://demo`,
      `  aws --endpoint-url ${endpoint} s3 cp README.md s3://demo/README.md --sse-c AES256 --sse-c-key fileb://key.bin`,
      `  aws --endpoint-url ${endpoint} s3 cp s3://demo/README.md - --sse-c AES256 --sse-c-key fileb://key.bin`,
    );
  }
  process.stderr.write(lines.join('\n') + '\n');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${signal}: closing listeners, finishing in-flight requests (up to ${config.shutdownGraceMs / 1000} s)\n`);
    admin?.drain();
    // Whatever happens below (a store that never answers, a stuck socket), the process exits.
    setTimeout(() => {
      process.stderr.write('shutdown did not finish in time: exiting anyway\n');
      process.exit(1);
    }, config.shutdownGraceMs + 5000).unref();
    await proxy.close(config.shutdownGraceMs);
    await admin?.close();
    await upstream.close();
    await embedded?.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      passphrase: { type: 'string' },
      salt: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (values.version) {
    process.stdout.write(version() + '\n');
    return 0;
  }
  const command = positionals[0] ?? 'serve';
  if (command === 'keygen') {
    const salt = values.salt !== undefined ? Buffer.from(values.salt, 'base64') : undefined;
    const k = generateKey({ ...(values.passphrase !== undefined ? { passphrase: values.passphrase } : {}), ...(salt ? { salt } : {}) });
    process.stdout.write(describeKey(k) + '\n');
    wipe(k.key);
    return 0;
  }
  let config: Config;
  try {
    config = loadConfig({ configPath: values.config });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(e.message + '\n');
      return 2;
    }
    throw e;
  }
  switch (command) {
    case 'check-config':
      process.stdout.write('configuration OK\n');
      return 0;
    case 'serve':
      await serve(config);
      return -1; // keep running
    default:
      process.stderr.write(`unknown command "${command}"\n\n${HELP}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`fatal: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
