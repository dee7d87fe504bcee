/**
 * The proxy's CPU per small request (issue 13): 4 KiB PUT+GET pairs, CONCURRENCY at a time, through one proxy
 * process (the bin, SSEC_PROXY_WORKERS=1) in front of the shared RGW, with SSE-C and as a pass-through, and the
 * same requests sent to RGW directly. The proxy's CPU (utime + stime, all threads) is read from
 * /proc/<pid>/stat around each run: CPU per request does not depend on what else runs on the machine, while
 * req/s and latency do.
 *
 *   . /tmp/s3-ssec-proxy-rgw/env && node --import tsx bench/small.ts [--requests 3000] [--concurrency 32]
 *       [--kinds direct,ssec,pass] [--reps 1] [--dist]
 *
 * --requests counts PUTs and GETs (a pair is two). --dist runs the built proxy (`npm run build`; the bin runs
 * dist/ only when it is newer than every source). BENCH_PROXY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"
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

function cpuOfPid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, clock ticks of 10 ms
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

async function startProxy(dir: string) {
  const port = await freePort();
  const nodeArgs = (process.env.BENCH_PROXY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const entry = args.dist ? [join(ROOT, 'bin/s3-ssec-proxy.js')] : ['--import', 'tsx', join(ROOT, 'src/main.ts')];
  const proxy = spawn(process.execPath, [...(args.dist ? [] : ['--max-semi-space-size=2']), ...nodeArgs, ...entry], {
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

async function main(): Promise<void> {
  const kinds = args.kinds.split(',');
  const direct: Target = { origin: endpoint, agent: new Agent({ connections: CONCURRENCY }), headers: {} };
  const made = await send(direct, 'PUT', `/${bucket}`);
  await made.body.dump();
  if (made.statusCode !== 200) throw new Error(`create bucket: ${made.statusCode}`);
  const dir = mkdtempSync(join(tmpdir(), 'ssec-small-bench-'));
  const cert = await ensureDevCertificate(dir);
  const { proxy, port } = await startProxy(dir);
  const agent = new Agent({ connect: { ca: cert.caPem }, connections: CONCURRENCY });
  const key = randomBytes(32);
  const ssec = {
    'x-amz-server-side-encryption-customer-algorithm': 'AES256',
    'x-amz-server-side-encryption-customer-key': key.toString('base64'),
    'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(key).digest('base64'),
  };
  const targets: Record<string, Target> = {
    direct,
    ssec: { origin: `https://127.0.0.1:${port}`, agent, headers: ssec },
    pass: { origin: `https://127.0.0.1:${port}`, agent, headers: {} },
  };
  const out: Record<string, Array<{ opsPerSec: number; p50: number; p99: number; cpuMsPerRequest?: number }>> = {};
  try {
    // Warm-up (JIT, connection pools on both legs), not counted.
    await run(targets.ssec!, 'warm-ssec', Number(args.warmup));
    await run(targets.pass!, 'warm-pass', Number(args.warmup));
    await run(direct, 'warm-direct', Number(args.warmup));
    for (let r = 0; r < REPS; r++) {
      for (const kind of kinds) {
        const c0 = cpuOfPid(proxy.pid!);
        const res = await run(targets[kind]!, `${kind}-${r}`, REQUESTS);
        const cpuMs = kind === 'direct' ? undefined : ((cpuOfPid(proxy.pid!) - c0) * 1000) / REQUESTS;
        (out[kind] ??= []).push({ ...res, ...(cpuMs === undefined ? {} : { cpuMsPerRequest: cpuMs }) });
        log(
          `${kind}: ${res.opsPerSec.toFixed(0)} req/s, p50 ${res.p50.toFixed(1)} ms, p99 ${res.p99.toFixed(1)} ms` +
            (cpuMs === undefined ? '' : `, proxy CPU ${cpuMs.toFixed(3)} ms/request`),
        );
      }
    }
  } finally {
    // Waits for the exit: a --cpu-prof profile is written then.
    const exited = new Promise((r) => proxy.once('exit', r));
    proxy.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    await agent.close();
  }
  process.stdout.write(`${JSON.stringify({ requests: REQUESTS, concurrency: CONCURRENCY, ...out })}\n`);
  await removeBucket(direct);
  await direct.agent.close();
}

await main();
