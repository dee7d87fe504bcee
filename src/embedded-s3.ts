/**
 * A zero-setup S3 upstream: fauxqs (an S3/SQS/SNS emulator; only its S3 is used) in a child process, storing
 * buckets and objects as files under `dir`.
 *
 * Used by `s3-ssec-proxy --embedded` (a development store: `npm start`) and by tests that need some S3 server
 * but not RGW's fidelity. It is a development dependency: the production install (the image) does not have it,
 * and starting it there says so. Why this server and not s3rver: docs/OPERATIONS.md ("The embedded development
 * store"). Its limits: no signature checks (any key pair is accepted; the proxy in front authenticates clients),
 * each object body is held in memory while it is written or read, no bucket policies or versioning.
 *
 * Why a child process: the emulator (Fastify) installs its own handlers and does synchronous file I/O, which
 * must not stall the proxy's event loop; the child cannot outlive the parent: it exits when the IPC channel
 * closes (parent exited or was killed), and the parent SIGKILLs it on `exit`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { request } from 'node:http';
import { isIPv6 } from 'node:net';
import { resolve as resolvePath } from 'node:path';

export interface EmbeddedS3Options {
  /** Directory where the store keeps buckets and objects (created if missing). */
  dir: string;
  /** Address to listen on. @default '127.0.0.1' */
  host?: string;
  /** TCP port; 0 picks a free one. @default 0 */
  port?: number;
  /** Buckets to create before the server starts answering (existing ones are kept). @default [] */
  buckets?: readonly string[];
  /** How long to wait for the server to answer. @default 15000 */
  startTimeoutMs?: number;
}

export interface EmbeddedS3 {
  /** e.g. `http://127.0.0.1:41234` (path-style addressing: use `forcePathStyle`). */
  url: string;
  /** The key pair to sign with (the store accepts any; the proxy accepts this one from clients). */
  accessKeyId: 'EMBEDDED';
  secretAccessKey: 'EMBEDDED';
  region: 'us-east-1';
  /** PID of the store's child process. */
  pid: number;
  /** Stops the child (SIGTERM, then SIGKILL after 5 s); idempotent. The data in `dir` stays. */
  stop(): Promise<void>;
}

/** Error thrown when the store does not come up; `output` holds the tail of its stdout/stderr. */
export class EmbeddedS3StartError extends Error {
  override readonly name = 'EmbeddedS3StartError';
  constructor(
    message: string,
    readonly output: string,
    options?: ErrorOptions,
  ) {
    super(output.trim() === '' ? message : `${message}\n--- embedded store output ---\n${output.trimEnd()}`, options);
  }
}

/**
 * The child's program (CommonJS, run with `node -e`). argv: the store module's file URL, then a JSON config.
 * It reports `{ type: 'listening', port }` or `{ type: 'error', message }` over IPC and exits when
 * the IPC channel closes.
 */
const CHILD_PROGRAM = String.raw`
'use strict';
const [moduleUrl, configJson] = process.argv.slice(-2);
const config = JSON.parse(configJson);
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
const report = (msg) => { if (process.connected) process.send(msg); };
(async () => {
  const { startFauxqs } = await import(moduleUrl);
  const server = await startFauxqs({ host: config.host, port: config.port, logger: false, s3StorageDir: config.dir });
  for (const name of config.buckets) server.createBucket(name);
  report({ type: 'listening', port: server.port });
})().catch((err) => {
  report({ type: 'error', message: String(err && err.stack || err) });
  setTimeout(() => process.exit(1), 100);
});
`;

const OUTPUT_TAIL_BYTES = 16 * 1024;

/** The npm package of the embedded server (a devDependency). */
export const EMBEDDED_PACKAGE = 'fauxqs';

/**
 * Starts the store in a child process and waits until it answers HTTP.
 *
 * Credentials: the fixed pair `EMBEDDED`/`EMBEDDED` (the store checks none); region `us-east-1`. The caller must `stop()` it;
 * if it doesn't, the child still ends with the parent process.
 */
export async function startEmbeddedS3(options: EmbeddedS3Options): Promise<EmbeddedS3> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 0;
  const dir = resolvePath(options.dir);
  const startTimeoutMs = options.startTimeoutMs ?? 15_000;
  await mkdir(dir, { recursive: true });

  let moduleUrl: string;
  try {
    // ESM-only package: resolved with the import conditions.
    moduleUrl = import.meta.resolve(EMBEDDED_PACKAGE);
  } catch (err) {
    throw new EmbeddedS3StartError(
      `the embedded store (${EMBEDDED_PACKAGE}) is a development dependency and is not installed here ` +
        '(a production install, such as the image): set an upstream (SSEC_PROXY_UPSTREAM_URL), or run from a checkout after npm ci',
      '',
      { cause: err },
    );
  }
  const env = { ...process.env };
  // Nothing of the parent's loaders or test-runner context belongs in the child.
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(
    process.execPath,
    ['-e', CHILD_PROGRAM, moduleUrl, JSON.stringify({ host, port, dir, buckets: options.buckets ?? [] })],
    { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env, windowsHide: true },
  );

  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let listeningPort: number;
  try {
    listeningPort = await waitForListening(child, startTimeoutMs);
  } catch (err) {
    process.removeListener('exit', killOnExit);
    await terminate(child);
    throw new EmbeddedS3StartError(`the embedded store did not start on ${host}:${port}: ${(err as Error).message}`, output, {
      cause: err,
    });
  }

  const urlHost = isIPv6(host) ? `[${host}]` : host;
  const url = `http://${urlHost}:${listeningPort}`;
  try {
    await waitForHttp(url, startTimeoutMs);
  } catch (err) {
    process.removeListener('exit', killOnExit);
    await terminate(child);
    throw new EmbeddedS3StartError(`the embedded store at ${url} did not answer: ${(err as Error).message}`, output, {
      cause: err,
    });
  }

  // Neither the child nor its pipes keep the parent alive; the 'exit' hook and the child's
  // 'disconnect' handler end it with the parent.
  child.unref();
  child.channel?.unref();
  unrefStream(child.stdout);
  unrefStream(child.stderr);

  let stopping: Promise<void> | undefined;
  return {
    url,
    accessKeyId: 'EMBEDDED',
    secretAccessKey: 'EMBEDDED',
    region: 'us-east-1',
    pid: child.pid ?? -1,
    stop(): Promise<void> {
      stopping ??= (async () => {
        process.removeListener('exit', killOnExit);
        await terminate(child);
      })();
      return stopping;
    },
  };
}

function waitForListening(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (msg: unknown): void => {
      if (typeof msg !== 'object' || msg === null) return;
      const m = msg as { type?: unknown; port?: unknown; message?: unknown };
      if (m.type === 'listening' && typeof m.port === 'number') finish(undefined, m.port);
      else if (m.type === 'error') finish(new Error(String(m.message)));
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      finish(new Error(`the embedded store exited (code ${code}, signal ${signal})`));
    };
    const onError = (err: Error): void => finish(err);
    function finish(err: Error | undefined, port?: number): void {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      child.off('error', onError);
      if (err !== undefined || port === undefined) reject(err ?? new Error('no port'));
      else resolve(port);
    }
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/** Polls `GET url/` until any HTTP response arrives. */
async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      await new Promise<void>((resolve, reject) => {
        const req = request(url, { method: 'GET', timeout: 2_000 }, (res) => {
          res.resume();
          res.on('end', resolve);
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end();
      });
      return;
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw lastError instanceof Error ? lastError : new Error(`no HTTP answer within ${timeoutMs} ms`);
}

/** SIGTERM, wait up to 5 s, then SIGKILL; resolves once the child has exited. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
  if (child.connected) child.disconnect();
}

function unrefStream(stream: NodeJS.ReadableStream | null): void {
  (stream as unknown as { unref?: () => void } | null)?.unref?.();
}
