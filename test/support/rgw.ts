/**
 * The real S3 upstream for integration and e2e tests: Ceph RGW on loopback (scripts/start-rgw.sh).
 *
 * `npm test` (scripts/test.sh) starts RGW once and exports RGW_ENDPOINT, RGW_ACCESS_KEY_ID,
 * RGW_SECRET_ACCESS_KEY (+ RGW_REGION, RGW_DIR); {@link ensureRgw} then just returns them. Run alone
 * (`node --import tsx --test test/integration/x.test.ts`), it runs scripts/start-rgw.sh itself —
 * idempotent, under a second when the cluster is already up, ~15 s from nothing — and leaves the
 * cluster running for the next run (stop it with `bash scripts/stop-rgw.sh`).
 *
 * There is no silent skip: when RGW cannot start, ensureRgw throws with the path of the log.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RgwEndpoint {
  /** e.g. `http://127.0.0.1:7480` (path-style addressing). */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The cluster's directory (config, logs under `log/`); '' when unknown (endpoint given by env). */
  dir: string;
}

/** Repository root (this file is test/support/rgw.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Default cluster directory, shared with scripts/start-rgw.sh. */
export const DEFAULT_RGW_DIR = '/tmp/s3-ssec-proxy-rgw';

/** Generous: the first start may install Debian packages. */
const START_TIMEOUT_MS = 15 * 60 * 1000;

let pending: Promise<RgwEndpoint> | undefined;

/**
 * The RGW endpoint to test against: from the environment when scripts/test.sh set it, else started
 * (or found running) with scripts/start-rgw.sh. Memoized per process.
 */
export function ensureRgw(): Promise<RgwEndpoint> {
  pending ??= resolveRgw().catch((err: unknown) => {
    pending = undefined; // let a later call retry
    throw err;
  });
  return pending;
}

async function resolveRgw(): Promise<RgwEndpoint> {
  const fromEnv = rgwFromEnv(process.env);
  if (fromEnv !== undefined) return fromEnv;

  const dir = resolve(process.env.RGW_DIR ?? DEFAULT_RGW_DIR);
  await mkdir(dir, { recursive: true });
  const logPath = join(dir, 'start-rgw.log');
  const script = join(REPO_ROOT, 'scripts', 'start-rgw.sh');
  const code = await runLogged('bash', [script, dir], logPath, START_TIMEOUT_MS);
  if (code !== 0) {
    throw new Error(
      `RGW did not start (scripts/start-rgw.sh ${dir} exited ${code}); see ${logPath} and ${join(dir, 'log')}\n` +
        (await tail(logPath)),
    );
  }
  const envPath = join(dir, 'env');
  let vars: Record<string, string>;
  try {
    vars = parseEnvFile(await readFile(envPath, 'utf8'));
  } catch (err) {
    throw new Error(`RGW started but ${envPath} is unreadable; see ${logPath}`, { cause: err });
  }
  const endpoint = rgwFromEnv(vars);
  if (endpoint === undefined) throw new Error(`${envPath} lacks RGW_ENDPOINT/RGW_ACCESS_KEY_ID/RGW_SECRET_ACCESS_KEY`);
  return { ...endpoint, dir: endpoint.dir === '' ? dir : endpoint.dir };
}

function rgwFromEnv(env: Record<string, string | undefined>): RgwEndpoint | undefined {
  const endpoint = env.RGW_ENDPOINT;
  const accessKeyId = env.RGW_ACCESS_KEY_ID;
  const secretAccessKey = env.RGW_SECRET_ACCESS_KEY;
  if (!endpoint || !accessKeyId || !secretAccessKey) return undefined;
  return { endpoint, accessKeyId, secretAccessKey, region: env.RGW_REGION || 'us-east-1', dir: env.RGW_DIR ?? '' };
}

/** Parses the `export NAME=value` lines scripts/start-rgw.sh writes (no quoting is used there). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m === null) continue;
    let value = m[2]!.trim();
    if (/^(['"]).*\1$/.test(value)) value = value.slice(1, -1);
    out[m[1]!] = value;
  }
  return out;
}

export function runLogged(cmd: string, args: string[], logPath: string, timeoutMs: number): Promise<number | string> {
  return new Promise((resolvePromise, reject) => {
    const log = createWriteStream(logPath, { flags: 'w' });
    log.on('open', () => {
      const child = spawn(cmd, args, { stdio: ['ignore', log, log] });
      const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        log.end();
        reject(err);
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        log.end(() => resolvePromise(code ?? `signal ${signal}`));
      });
    });
    log.on('error', reject);
  });
}

export async function tail(path: string, lines = 30): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
