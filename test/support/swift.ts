/**
 * The second real S3 upstream for the store tests (test/stores/): OpenStack Swift 2.30 with s3api on loopback
 * (scripts/start-swift.sh), beside Ceph RGW (./rgw.ts).
 *
 * `npm test` (scripts/test.sh) starts Swift once and exports SWIFT_ENDPOINT, SWIFT_ACCESS_KEY_ID,
 * SWIFT_SECRET_ACCESS_KEY (+ SWIFT_REGION, SWIFT_DIR); {@link swiftUpstream} then just returns them. Run alone,
 * it runs scripts/start-swift.sh itself (idempotent; ~5 s from nothing once the packages are installed) and
 * leaves Swift running for the next run (stop it with `bash scripts/stop-swift.sh`).
 *
 * There is no silent skip: when Swift cannot start, swiftUpstream throws with the path of the log.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseEnvFile, REPO_ROOT, runLogged, tail } from './rgw.ts';
import type { UpstreamInfo } from './proxy.ts';

/** Default directory, shared with scripts/start-swift.sh. */
export const DEFAULT_SWIFT_DIR = '/tmp/s3-ssec-proxy-swift';

/** Generous: the first start may install Debian packages. */
const START_TIMEOUT_MS = 15 * 60 * 1000;

let pending: Promise<UpstreamInfo> | undefined;

/** The Swift s3api endpoint: from the environment when scripts/test.sh set it, else started. Memoized. */
export function swiftUpstream(): Promise<UpstreamInfo> {
  pending ??= resolveSwift().catch((err: unknown) => {
    pending = undefined;
    throw err;
  });
  return pending;
}

async function resolveSwift(): Promise<UpstreamInfo> {
  const fromEnv = swiftFromEnv(process.env);
  if (fromEnv !== undefined) return fromEnv;
  const dir = resolve(process.env.SWIFT_DIR ?? DEFAULT_SWIFT_DIR);
  await mkdir(dir, { recursive: true });
  const logPath = join(dir, 'start-swift.log');
  const code = await runLogged('bash', [join(REPO_ROOT, 'scripts', 'start-swift.sh'), dir], logPath, START_TIMEOUT_MS);
  if (code !== 0) {
    throw new Error(`Swift did not start (scripts/start-swift.sh ${dir} exited ${code}); see ${logPath} and ${join(dir, 'log')}\n` + (await tail(logPath)));
  }
  const envPath = join(dir, 'env');
  const found = swiftFromEnv(parseEnvFile(await readFile(envPath, 'utf8')));
  if (found === undefined) throw new Error(`${envPath} lacks SWIFT_ENDPOINT/SWIFT_ACCESS_KEY_ID/SWIFT_SECRET_ACCESS_KEY`);
  return found;
}

function swiftFromEnv(env: Record<string, string | undefined>): UpstreamInfo | undefined {
  const endpoint = env.SWIFT_ENDPOINT;
  const accessKeyId = env.SWIFT_ACCESS_KEY_ID;
  const secretAccessKey = env.SWIFT_SECRET_ACCESS_KEY;
  if (!endpoint || !accessKeyId || !secretAccessKey) return undefined;
  return { endpoint, accessKeyId, secretAccessKey, region: env.SWIFT_REGION || 'us-east-1' };
}
