/**
 * The proxy's CPU per small request (issue 13): 4 KiB PUT+GET pairs, CONCURRENCY at a time, through one proxy
 * process (the bin, SSEC_PROXY_WORKERS=1) in front of the shared RGW, with SSE-C and as a pass-through, and the
 * same requests sent to RGW directly. The proxy's CPU (utime + stime, all threads) is read from
 * /proc/<pid>/stat around each run: CPU per request does not depend on what else runs on the machine, while
 * req/s and latency do.
 *
 *   . /tmp/s3-ssec-proxy-rgw/env && node --import tsx bench/small.ts [--requests 3000] [--concurrency 32]
 *       [--kinds direct,ssec,pass] [--reps 1] [--dist | --entries a/main.js,b/main.js]
 *
 * --requests counts PUTs and GETs (a pair is two). --dist runs the built proxy (`npm run build`; the bin runs
 * dist/ only when it is newer than every source).
 * --entries runs one proxy per built main.js, each optionally preceded by node flags ("--max-semi-space-size=8 dist/main.js"; e.g. a copy of another revision's dist/ inside this checkout, so
 * its packages resolve) and alternates their runs: an A/B on the same machine at the same time, the only
 * comparison this shared 2-core VM supports. BENCH_PROXY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"
 * profiles the proxy (the profile is written when it exits; summarise it with bench/profile-top.ts).
 * Progress goes to stderr; the last line on stdout is one JSON object.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { createUpstreamSigner } from '../src/sigv4/sign.ts';
import { ensureDevCertificate } from '../src/tls/dev-cert.ts';
import { freePort } from '../test/support/net.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const SIZE = 4096;
const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '3000' },
    concurrency: { type: 'string', default: '32' },
    kinds: { type: 'string', default: 'direct,ssec,pass' },
    reps: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '400' },
    dist: { type: 'boolean', default: false },
    entries: { type: 'string' },
  },
});
const REQUESTS = Number(args.requests);
const CONCURRENCY = Number(args.concurrency);
const REPS = Math.max(1, Number(args.reps));
const endpoint = process.env.RGW_ENDPOINT ?? 'http://127.0.0.1:7480';
const accessKeyId = process.env.RGW_ACCESS_KEY_ID ?? 'PROXYTESTACCESSKEY01';
const secretAccessKey = process.env.RGW_SECRET_ACCESS_KEY ?? 'proxytestsecretkey000000000000000000000000';
const region = process.env.RGW_REGION ?? 'us-east-1';
const signer = createUpstreamSigner({ accessKeyId, secretAccessKey, region });
const bucket = `small-bench-${randomBytes(4).toString('hex')}`;
const written: string[] = [];

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** CPU seconds of a process (all threads): user and system, clock ticks of 10 ms. */
function cpuOfPid(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
}

interface Target {
  origin: string;
  agent: Agent;
  headers: Record<string, string>;
}

async function send(t: Target, method: 'PUT' | 'GET' | 'DELETE', path: string, extra: Record<string, string> = {}, body?: Buffer) {
  const url = new URL(t.origin);
  const signed = await signer.sign({
    method,
    protocol: url.protocol as 'http:' | 'https:',
    hostname: url.hostname,
    port: Number(url.port),
    path,
    query: {},
    headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...t.headers, ...extra },
  });
  return request(signed.url, { method, headers: signed.headers, body: body ?? null, dispatcher: t.agent });
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

/** `count` requests (PUT+GET pairs) of 4 KiB, CONCURRENCY at a time; latencies in ms. */
async function run(t: Target, prefix: string, count: number) {
  const data = randomBytes(SIZE);
  const lat: number[] = [];
  let next = 0;
  const pairs = count / 2;
  const worker = async () => {
    while (next < pairs) {
      const path = `/${bucket}/${prefix}-${next++}`;
      written.push(path);
      let t0 = process.hrtime.bigint();
      const p = await send(t, 'PUT', path, { 'content-length': String(SIZE) }, data);
      const text = await p.body.text();
      if (p.statusCode !== 200) throw new Error(`PUT ${path}: ${p.statusCode} ${text}`);
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      t0 = process.hrtime.bigint();
      const g = await send(t, 'GET', path);
      const got = Buffer.from(await g.body.arrayBuffer());
      if (g.statusCode !== 200 || !got.equals(data)) throw new Error(`GET ${path}: ${g.statusCode}, ${got.length} bytes`);
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((a, b) => a - b);
  return { opsPerSec: count / seconds, p50: pct(lat, 50), p99: pct(lat, 99) };
}

/** The shared RGW keeps memstore objects in RAM: every object written here is deleted, then the bucket. */
async function removeBucket(t: Target): Promise<void> {
  const paths = [...written];
  const worker = async () => {
    for (let p = paths.pop(); p !== undefined; p = paths.pop()) await (await send(t, 'DELETE', p)).body.dump();
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  await (await send(t, 'DELETE', `/${bucket}`)).body.dump();
}

/** `[node flags…] main.js`: the flags replace the bin's default V8 flag (to compare flags on one build). */
function entryArgs(spec: string): string[] {
  const words = spec.split(' ').filter(Boolean);
  const flags = words.slice(0, -1);
  return [...(flags.some((f) => f.startsWith('--max-semi-space-size')) ? [] : ['--max-semi-space-size=2']), ...flags, words.at(-1)!];
}

/** A proxy process: the bin (--dist), a given built main.js (an A/B against another build), or src/ through tsx. */
async function startProxy(dir: string, mainJs?: string) {
  const port = await freePort();
  const nodeArgs = (process.env.BENCH_PROXY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // The bin adds the V8 flag itself (bin/s3-ssec-proxy.js); the other two get it here.
  const entry = mainJs ? entryArgs(mainJs) : args.dist ? [join(ROOT, 'bin/s3-ssec-proxy.js')] : ['--max-semi-space-size=2', '--import', 'tsx', join(ROOT, 'src/main.ts')];
  const proxy = spawn(process.execPath, [...nodeArgs, ...entry], {
    env: {
      ...process.env,
      SSEC_PROXY_LISTEN: `127.0.0.1:${port}`,
      SSEC_PROXY_STATE_DIR: dir,
      SSEC_PROXY_UPSTREAM_URL: endpoint,
      SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: accessKeyId,
      SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: secretAccessKey,
      SSEC_PROXY_UPSTREAM_REGION: region,
      SSEC_PROXY_WORKERS: '1', // one process: the CPU read from /proc is the proxy's own
    },
    // The access log (info) is written, as deployed, to a pipe drained here.
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proxy.stdout!.resume();
  await new Promise<void>((resolve, reject) => {
    let err = '';
    proxy.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      if (err.includes('listening on')) resolve();
    });
    proxy.on('exit', (code) => reject(new Error(`proxy exited ${code}: ${err}`)));
  });
  return { proxy, port };
}

interface Result {
  opsPerSec: number;
  p50: number;
  p99: number;
  cpuMsPerRequest?: number;
  userMs?: number;
  systemMs?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

async function main(): Promise<void> {
  const kinds = args.kinds.split(',');
  const direct: Target = { origin: endpoint, agent: new Agent({ connections: CONCURRENCY }), headers: {} };
  const made = await send(direct, 'PUT', `/${bucket}`);
  await made.body.dump();
  if (made.statusCode !== 200) throw new Error(`create bucket: ${made.statusCode}`);
  const dir = mkdtempSync(join(tmpdir(), 'ssec-small-bench-'));
  const cert = await ensureDevCertificate(dir);
  // --entries a/main.js,b/main.js: one proxy per build, their runs alternated so both see the same machine.
  const entries: Array<string | undefined> = args.entries ? args.entries.split(',') : [undefined];
  const proxies: Array<Awaited<ReturnType<typeof startProxy>>> = [];
  for (const e of entries) proxies.push(await startProxy(dir, e));
  const agent = new Agent({ connect: { ca: cert.caPem }, connections: CONCURRENCY * proxies.length });
  const key = randomBytes(32);
  const ssec = {
    'x-amz-server-side-encryption-customer-algorithm': 'AES256',
    'x-amz-server-side-encryption-customer-key': key.toString('base64'),
    'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(key).digest('base64'),
  };
  const targetOf = (kind: string, i: number): Target =>
    kind === 'direct' ? direct : { origin: `https://127.0.0.1:${proxies[i]!.port}`, agent, headers: kind === 'ssec' ? ssec : {} };
  const name = (kind: string, i: number) => (kind === 'direct' || proxies.length === 1 ? kind : `${kind}@${i}`);
  const out: Record<string, Result[]> = {};
  try {
    // Warm-up (JIT, connection pools on both legs), not counted.
    for (let i = 0; i < proxies.length; i++) {
      await run(targetOf('ssec', i), `warm-ssec-${i}`, Number(args.warmup));
      await run(targetOf('pass', i), `warm-pass-${i}`, Number(args.warmup));
    }
    await run(direct, 'warm-direct', Number(args.warmup));
    for (let r = 0; r < REPS; r++) {
      for (const kind of kinds) {
        for (let i = 0; i < proxies.length; i++) {
          if (kind === 'direct' && i > 0) continue;
          const pid = proxies[i]!.proxy.pid!;
          const c0 = cpuOfPid(pid);
          const res = await run(targetOf(kind, i), `${name(kind, i)}-${r}`, REQUESTS);
          const c1 = cpuOfPid(pid);
          const perRequest = (s: number) => (s * 1000) / REQUESTS;
          const cpu =
            kind === 'direct'
              ? undefined
              : { cpuMsPerRequest: perRequest(c1.user + c1.system - c0.user - c0.system), userMs: perRequest(c1.user - c0.user), systemMs: perRequest(c1.system - c0.system) };
          (out[name(kind, i)] ??= []).push({ ...res, ...cpu });
          log(
            `${name(kind, i)}: ${res.opsPerSec.toFixed(0)} req/s, p50 ${res.p50.toFixed(1)} ms, p99 ${res.p99.toFixed(1)} ms` +
              (cpu === undefined ? '' : `, proxy CPU ${cpu.cpuMsPerRequest.toFixed(3)} ms/request (user ${cpu.userMs.toFixed(3)}, system ${cpu.systemMs.toFixed(3)})`),
          );
        }
      }
    }
  } finally {
    // Waits for the exits: a --cpu-prof profile is written then.
    await Promise.all(
      proxies.map(async ({ proxy }) => {
        const exited = new Promise((r) => proxy.once('exit', r));
        proxy.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      }),
    );
    await agent.close();
  }
  const medians: Record<string, Record<string, number>> = {};
  for (const [k, rs] of Object.entries(out)) {
    medians[k] = {};
    for (const f of ['opsPerSec', 'p50', 'p99', 'cpuMsPerRequest', 'userMs', 'systemMs'] as const) {
      const xs = rs.map((x) => x[f]).filter((x): x is number => x !== undefined);
      if (xs.length) medians[k][f] = Math.round(median(xs) * 1000) / 1000;
    }
    log(`median ${k}: ${JSON.stringify(medians[k])}`);
  }
  process.stdout.write(`${JSON.stringify({ requests: REQUESTS, concurrency: CONCURRENCY, reps: REPS, median: medians, runs: out })}\n`);
  await removeBucket(direct);
  await direct.agent.close();
}

await main();
