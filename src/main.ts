/**
 * Entry point: parse the command line and configuration, start the listeners, drain on SIGTERM.
 * The only module with process-level effects.
 */
import cluster from 'node:cluster';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { startEmbeddedS3 } from './embedded-s3.ts';
import { Metrics, startAdmin } from './admin.ts';
import { describeKey, generateKey, keyJson } from './keygen.ts';
import { note } from './log.ts';
import { runNamedTool, TOOLS_HELP } from './tools/index.ts';
import { ensureDevCertificate } from './tls/dev-cert.ts';
import { Upstream } from './upstream.ts';
import { wipe } from './sse-c/data-key.ts';
import { superviseWorkers, type FromWorker, type ToWorker, type WorkerSetup } from './workers.ts';

const HELP = `s3-ssec-proxy — an S3 proxy that gives any S3 store SSE-C (customer-key) encryption

Usage: s3-ssec-proxy [serve] [--config FILE] [--embedded]
       s3-ssec-proxy check-config [--config FILE] [--embedded]
       s3-ssec-proxy keygen [--out FILE] [--json] [--passphrase-stdin | --passphrase-file FILE [--salt BASE64]]
       s3-ssec-proxy --version | --help
${TOOLS_HELP}

serve needs an upstream S3 store (SSEC_PROXY_UPSTREAM_URL and its credentials, or the config file's "upstream").
--embedded (SSEC_PROXY_EMBEDDED=true) instead serves a local development store, data in stateDir/s3 (npm start
does this): https://127.0.0.1:8443 with a generated development certificate. Configuration: README.md.
Ctrl-C drains in-flight requests; a second Ctrl-C exits at once.`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** What every serving process shares: the upstream (the embedded store, started once) and the certificate. */
async function prepare(config: Config) {
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
      noBucketPolicies: true,
    };
  }
  let tls: { cert: string | Buffer; key: string | Buffer };
  let caPath: string | undefined;
  let devTls: WorkerSetup['devTls'];
  if (config.tls) {
    tls = { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) };
  } else {
    const domain = config.virtualHostDomain;
    const dev = await ensureDevCertificate(stateDir, domain ? [domain, `*.${domain}`] : []);
    tls = { cert: dev.certPem, key: dev.keyPem };
    devTls = { cert: dev.certPem, key: dev.keyPem };
    caPath = dev.caPath;
  }
  const setup: WorkerSetup = { upstream: effective.upstream!, probeAllLayouts: effective.probeAllLayouts, ...(effective.noBucketPolicies ? { noBucketPolicies: true } : {}), devTls };
  return { effective, tls, caPath, embedded, setup };
}

/** The listeners of one serving process (the only one, or a cluster worker). */
async function startServing(config: Config, effective: Config, tls: { cert: string | Buffer; key: string | Buffer }) {
  const up = effective.upstream!;
  const metrics = new Metrics();
  const upstream = new Upstream(up.url, up.region, {
    uploadConnections: config.maxConcurrentUploads,
    observer: metrics.upstreamObserver,
    ...(config.upstreamCa ? { ca: config.upstreamCa } : {}),
  });
  // Loaded here, not at the top: the tools (decrypt above all) run from this entry point without the HTTP server.
  const { startProxy } = await import('./server.ts');
  const proxy = await startProxy({ config: effective, upstream, tls, metrics, ...(config.tls ? { tlsFiles: config.tls } : {}) });
  return { metrics, upstream, proxy };
}

function banner(
  config: Config,
  p: { httpsPort: number; httpPort: number | undefined; adminPort: number | undefined; embedded: boolean; caPath: string | undefined; effective: Config },
): string {
  const up = p.effective.upstream!;
  const endpoint = `https://${config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host}:${p.httpsPort}`;
  const lines = [
    `s3-ssec-proxy ${version()} listening on ${endpoint}${p.httpPort ? ` and http://${config.http!.host}:${p.httpPort}` : ''}` +
      (config.workers > 1 ? ` (${config.workers} workers)` : ''),
    `upstream: ${p.embedded ? `embedded local S3 store (${up.url}, data in ${join(resolve(config.stateDir), 's3')})` : up.url}`,
    ...(p.adminPort !== undefined ? [`admin: http://${config.admin!.host}:${p.adminPort}/metrics, /healthz, /readyz`] : []),
  ];
  if (p.embedded) {
    lines.push(
      '',
      'Try it with aws-cli (credentials of the embedded store):',
      `  export AWS_ACCESS_KEY_ID=${up.accessKeyId} AWS_SECRET_ACCESS_KEY=${up.secretAccessKey} AWS_DEFAULT_REGION=${up.region}`,
      `  export AWS_CA_BUNDLE=${p.caPath}`,
      '  head -c 32 /dev/urandom > key.bin',
      `  aws --endpoint-url ${endpoint} s3 mb s3://demo`,
      `  aws --endpoint-url ${endpoint} s3 cp README.md s3://demo/README.md --sse-c AES256 --sse-c-key fileb://key.bin`,
      `  aws --endpoint-url ${endpoint} s3 cp s3://demo/README.md - --sse-c AES256 --sse-c-key fileb://key.bin`,
    );
  }
  return lines.join('\n') + '\n';
}

/** Whatever happens during a drain (a store that never answers, a stuck socket), the process exits by then. */
function again(signal: string): string {
  return signal === 'SIGINT' ? '; Ctrl-C again to exit now' : '';
}

function failsafe(config: Config, last?: () => void): void {
  setTimeout(() => {
    last?.();
    note('shutdown did not finish in time: exiting anyway');
    process.exit(1);
  }, config.shutdownGraceMs + 5000).unref();
}

/**
 * SIGTERM and a first SIGINT drain (stop); a second SIGINT (Ctrl-C again) exits at once, cutting what is in
 * flight (a cut upload is never stored: the upstream request is aborted with it).
 */
function onSignals(stop: (signal: string) => void, now?: () => void): void {
  let interrupted = false;
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => {
    if (interrupted) {
      now?.();
      note('second SIGINT: exiting now, cutting requests in flight');
      process.exit(130);
    }
    interrupted = true;
    stop('SIGINT');
  });
}

/** SSEC_PROXY_WORKERS=1: one process serves everything, no cluster. */
async function serve(config: Config): Promise<void> {
  const { effective, tls, caPath, embedded } = await prepare(config);
  const { metrics, upstream, proxy } = await startServing(config, effective, tls);
  const adminIdentity = effective.credentials[0]?.upstream ?? effective.upstream!;
  const admin = config.admin
    ? await startAdmin({ ...config.admin, metrics, upstream, identity: adminIdentity })
    : undefined;
  process.stderr.write(banner(config, { ...proxy, adminPort: admin?.port, embedded: !!embedded, caPath, effective }));

  let stopping = false;
  onSignals(async (signal) => {
    if (stopping) return;
    stopping = true;
    note(`${signal}: closing listeners, finishing in-flight requests (up to ${config.shutdownGraceMs / 1000} s)${again(signal)}`);
    admin?.drain();
    failsafe(config);
    await proxy.close(config.shutdownGraceMs);
    await admin?.close();
    await upstream.close();
    await embedded?.stop();
    process.exit(0);
  });
}

/**
 * The cluster primary: the embedded store and the certificate once, the admin listener over every worker's
 * metrics, and the workers' supervision. It serves no request itself.
 */
async function servePrimary(config: Config): Promise<void> {
  const { effective, caPath, embedded, setup } = await prepare(config);
  const up = effective.upstream!;
  let supervised: Awaited<ReturnType<typeof superviseWorkers>>;
  try {
    supervised = await superviseWorkers({ count: config.workers, setup, note });
  } catch (e) {
    await embedded?.stop();
    throw e;
  }
  const { supervisor } = supervised;
  // Only for /readyz's ListBuckets: the requests themselves go through the workers' own.
  const upstream = new Upstream(up.url, up.region, config.upstreamCa ? { ca: config.upstreamCa } : {});
  const admin = config.admin
    ? await startAdmin({
        ...config.admin,
        collect: () => supervisor.metrics(),
        unready: () => (supervisor.listening() === 0 ? 'no worker listening' : undefined),
        upstream,
        identity: effective.credentials[0]?.upstream ?? up,
      })
    : undefined;
  process.stderr.write(banner(config, { ...supervised, adminPort: admin?.port, embedded: !!embedded, caPath, effective }));

  let stopping = false;
  onSignals(async (signal) => {
    if (stopping) return;
    stopping = true;
    note(`${signal}: closing listeners, finishing in-flight requests (up to ${config.shutdownGraceMs / 1000} s) in ${config.workers} workers${again(signal)}`);
    admin?.drain();
    failsafe(config, () => supervisor.kill());
    await supervisor.drain();
    await admin?.close();
    await upstream.close();
    await embedded?.stop();
    process.exit(0);
  }, () => supervisor.kill());
}

/** A cluster worker: the primary's setup, then the listeners; drains when the primary says (or on a signal). */
async function serveWorker(config: Config): Promise<void> {
  const setup = await new Promise<WorkerSetup>((resolve) => {
    const onSetup = (m: ToWorker) => {
      if (m.type !== 'ssec:setup') return;
      process.off('message', onSetup);
      resolve(m.setup);
    };
    process.on('message', onSetup);
  });
  const effective: Config = { ...config, upstream: setup.upstream, probeAllLayouts: setup.probeAllLayouts, ...(setup.noBucketPolicies ? { noBucketPolicies: true } : {}) };
  const tls = setup.devTls ?? { cert: readFileSync(config.tls!.cert), key: readFileSync(config.tls!.key) };
  const { metrics, upstream, proxy } = await startServing(config, effective, tls);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    note(`${signal}: closing listeners, finishing in-flight requests (up to ${config.shutdownGraceMs / 1000} s)`);
    failsafe(config);
    await proxy.close(config.shutdownGraceMs);
    await upstream.close();
    process.exit(0);
  };
  process.on('message', (m: ToWorker) => {
    if (m.type === 'ssec:drain') void stop('drain');
    else if (m.type === 'ssec:metrics') {
      void metrics.registry.getMetricsAsJSON().then((json) => process.send!({ type: 'ssec:metrics', id: m.id, metrics: json } satisfies FromWorker));
    }
  });
  onSignals((signal) => void stop(signal));
  process.send!({ type: 'ssec:listening', httpsPort: proxy.httpsPort, httpPort: proxy.httpPort } satisfies FromWorker);
}

/** A command's options; a wrong one is a usage error (exit 2) naming it. */
function options<T extends ParseArgsConfig['options']>(args: string[], opts: T) {
  return parseArgs({ args, options: { ...opts, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true }).values;
}

class UsageError extends Error {}

function loadOrReport(values: { config?: string | undefined; embedded?: boolean | undefined }): Config | undefined {
  try {
    // --embedded is SSEC_PROXY_EMBEDDED=true said on the command line.
    const env = values.embedded ? { ...process.env, SSEC_PROXY_EMBEDDED: 'true' } : process.env;
    return loadConfig({ configPath: values.config, env, serving: true });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(e.message + '\n');
      return undefined;
    }
    throw e;
  }
}

const SERVE_OPTIONS = { config: { type: 'string', short: 'c' }, embedded: { type: 'boolean' } } as const;

async function serveCommand(args: string[]): Promise<number> {
  const values = options(args, SERVE_OPTIONS);
  if (values.help) return help();
  const config = loadOrReport(values);
  if (!config) return 2;
  if (cluster.isWorker) await serveWorker(config);
  else if (config.workers > 1) await servePrimary(config);
  else await serve(config);
  return -1; // keep running
}

async function checkConfigCommand(args: string[]): Promise<number> {
  const values = options(args, SERVE_OPTIONS);
  if (values.help) return help();
  if (!loadOrReport(values)) return 2;
  process.stdout.write('configuration OK\n');
  return 0;
}

async function keygenCommand(args: string[]): Promise<number> {
  const values = options(args, {
    out: { type: 'string', short: 'o' },
    json: { type: 'boolean' },
    'passphrase-stdin': { type: 'boolean' },
    'passphrase-file': { type: 'string' },
    salt: { type: 'string' },
    // Only to refuse it with a useful message.
    passphrase: { type: 'string' },
  });
  if (values.help) return help();
  if (values.passphrase !== undefined) {
    throw new UsageError(
      'keygen: a passphrase on the command line is visible to other users (ps) and kept in shell history; ' +
        'give it on standard input (--passphrase-stdin) or in a file (--passphrase-file FILE)',
    );
  }
  if (values['passphrase-stdin'] && values['passphrase-file'] !== undefined) throw new UsageError('keygen: --passphrase-stdin or --passphrase-file, not both');
  let passphrase: string | undefined;
  if (values['passphrase-stdin']) passphrase = (await readAll(process.stdin)).toString('utf8');
  else if (values['passphrase-file'] !== undefined) passphrase = readFileSync(values['passphrase-file'], 'utf8');
  passphrase = passphrase?.replace(/\r?\n$/, '');
  if (passphrase === '') throw new UsageError('keygen: the passphrase is empty');
  if (values.salt !== undefined && passphrase === undefined) throw new UsageError('keygen: --salt goes with a passphrase');
  const salt = values.salt !== undefined ? Buffer.from(values.salt, 'base64') : undefined;
  const k = generateKey({ ...(passphrase !== undefined ? { passphrase } : {}), ...(salt ? { salt } : {}) });
  try {
    if (values.out !== undefined) {
      try {
        // 0600 and never over an existing file: a key overwritten is every object under it lost.
        writeFileSync(values.out, k.key, { mode: 0o600, flag: 'wx' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`keygen: ${values.out} exists; not overwriting a key (move it away first)`);
        throw e;
      }
    }
    const file = values.out !== undefined ? resolve(values.out) : undefined;
    process.stdout.write((values.json ? JSON.stringify(keyJson(k, file)) : describeKey(k, file)) + '\n');
  } finally {
    wipe(k.key);
  }
  return 0;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
}

function help(): number {
  process.stdout.write(HELP + '\n');
  return 0;
}

/**
 * The subcommands, by name: each takes its own arguments and returns the exit code (-1: keeps running).
 * A new command is one entry here (the tools load their module on use, so serving never imports them).
 */
const COMMANDS: Readonly<Record<string, (args: string[]) => Promise<number>>> = {
  serve: serveCommand,
  'check-config': checkConfigCommand,
  keygen: keygenCommand,
};

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help') return help();
  if (first === '--version' || first === '-v') {
    process.stdout.write(version() + '\n');
    return 0;
  }
  // The tools (src/tools/) parse their own options.
  const tool = runNamedTool(first, rest);
  if (tool) return tool;
  const named = first !== undefined && !first.startsWith('-');
  const command = named ? first : 'serve';
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`unknown command "${command}"\n\n${HELP}\n`);
    return 2;
  }
  try {
    return await run(named ? rest : argv);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (e instanceof UsageError || code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      process.stderr.write(`${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    note(`fatal: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
