/**
 * `npm run bench` (issue 13): every comparison in one run on the same machine, each against the baseline it is
 * like, with the targets printed as met / not met beside the figures. Progress goes to stderr; the table, then
 * one JSON line, to stdout; an SVG chart (throughput and proxy CPU per GiB per case) to BENCH_SVG.
 *
 *   node --import tsx bench/run.ts [--quick]
 *
 * The proxy runs the production path (`node bin/s3-ssec-proxy.js`, which loads dist/ from `npm run build`) as
 * its own process tree, so its CPU (utime+stime of the process and its workers, /proc) and RSS are its own.
 * Env (set by scripts/bench.sh): RGW_ENDPOINT, RGW_TLS_ENDPOINT, RGW_TLS_CA, RGW_ACCESS_KEY_ID,
 * RGW_SECRET_ACCESS_KEY, BENCH_RGW_CONF (ceph.conf of the bench RGW, for `radosgw-admin gc process` between
 * phases), BENCH_SIZE_MIB, BENCH_WORKERS (N, default 2), BENCH_SVG.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent, request } from 'undici';
import { createUpstreamSigner } from '../src/sigv4/sign.ts';
import { ensureDevCertificate } from '../src/tls/dev-cert.ts';
import { freePort } from '../test/support/net.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const QUICK = process.argv.includes('--quick');
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SIZE = Number(process.env.BENCH_SIZE_MIB ?? (QUICK ? 64 : 1024)) * MiB;
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
/**
 * Rounds of the large-object cases, interleaved (every case once per round), reported as medians: on shared cores
 * one transfer can be ±40 % off the next, the same code path included; a median of interleaved rounds is not.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3));
const SMALL_SIZE = 4096;
const SMALL_CONCURRENCY = 32;
const SMALL_REQUESTS = QUICK ? 1600 : 12_800; // PUT + GET pairs count two each
const WARMUP = 8 * MiB;
const STREAMS = 64;
const STREAM_SIZE = (QUICK ? 4 : 64) * MiB;
const endpoint = process.env.RGW_ENDPOINT ?? 'http://127.0.0.1:7480';
const tlsEndpoint = process.env.RGW_TLS_ENDPOINT;
const tlsCa = process.env.RGW_TLS_CA ? readFileSync(process.env.RGW_TLS_CA, 'utf8') : undefined;
const accessKeyId = process.env.RGW_ACCESS_KEY_ID ?? 'PROXYTESTACCESSKEY01';
const secretAccessKey = process.env.RGW_SECRET_ACCESS_KEY ?? 'proxytestsecretkey000000000000000000000000';
const region = 'us-east-1';
const svgPath = process.env.BENCH_SVG ?? (QUICK ? join(tmpdir(), 'ssec-bench-quick.svg') : join(ROOT, 'docs/bench.svg'));
const signer = createUpstreamSigner({ accessKeyId, secretAccessKey, region });
const started = Date.now();

function progress(msg: string): void {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);
}

// ---------- process accounting (/proc) ----------

function tree(pid: number): number[] {
  const out = [pid];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      for (const c of children ? children.split(' ') : []) out.push(...tree(Number(c)));
    }
  } catch {
    // the process ended
  }
  return out;
}

/** CPU seconds (utime+stime, all threads) and RSS of a process and its descendants (cluster workers). */
function treeStat(pid: number): { cpuSeconds: number; rssMiB: number; processes: number } {
  let ticks = 0;
  let kb = 0;
  const pids = tree(pid);
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // gone between listing and reading
    }
  }
  return { cpuSeconds: ticks / 100, rssMiB: kb / 1024, processes: pids.length };
}

const CORES = Number(spawnSync('nproc').stdout.toString().trim()) || 1;

/** CPU seconds the whole machine has been busy (every process: client, proxy, store), from /proc/stat. */
function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + (f[7] ?? 0)) / 100;
}

function rssSampler(pid: number) {
  let peak = treeStat(pid).rssMiB;
  const timer = setInterval(() => (peak = Math.max(peak, treeStat(pid).rssMiB)), 50);
  return {
    stop: () => {
      clearInterval(timer);
      return (peak = Math.max(peak, treeStat(pid).rssMiB));
    },
  };
}

// ---------- S3 client ----------

function body(size: number): Readable {
  const block = randomBytes(MiB);
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) return this.push(null);
      const n = Math.min(MiB, size - sent);
      sent += n;
      this.push(n === MiB ? block : block.subarray(0, n));
    },
  });
}

interface Target {
  name: string;
  origin: string;
  agent: Agent;
  headers: Record<string, string>;
}

function ssecHeaders(key: Buffer): Record<string, string> {
  return {
    'x-amz-server-side-encryption-customer-algorithm': 'AES256',
    'x-amz-server-side-encryption-customer-key': key.toString('base64'),
    'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(key).digest('base64'),
  };
}

async function send(t: Target, method: 'PUT' | 'GET' | 'POST' | 'DELETE', path: string, extra: Record<string, string>, payload?: Readable | Buffer, query: Record<string, string> = {}) {
  const url = new URL(t.origin);
  const signed = await signer.sign({
    method,
    protocol: url.protocol as 'http:' | 'https:',
    hostname: url.hostname,
    port: Number(url.port),
    path,
    query,
    headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...t.headers, ...extra },
  });
  return request(signed.url, { method, headers: signed.headers, body: payload ?? null, dispatcher: t.agent });
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function put(t: Target, path: string, size: number): Promise<void> {
  const res = await send(t, 'PUT', path, { 'content-length': String(size) }, body(size));
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${t.name} PUT ${path}: ${res.statusCode} ${text}`);
}

async function get(t: Target, path: string, size: number): Promise<void> {
  const res = await send(t, 'GET', path, {});
  if (res.statusCode !== 200) throw new Error(`${t.name} GET ${path}: ${res.statusCode} ${await res.body.text()}`);
  let n = 0;
  await pipeline(res.body, new Writable({ write: (c: Buffer, _e, cb) => ((n += c.length), cb()) }));
  if (n !== size) throw new Error(`${t.name} GET ${path} returned ${n} bytes, not ${size}`);
}

async function del(path: string): Promise<void> {
  await (await send(direct, 'DELETE', path, {})).body.dump();
}

/** RGW keeps deleted tails until its GC runs (2 h by default); memstore holds them in RAM, so collect now. */
function collectGarbage(): void {
  const conf = process.env.BENCH_RGW_CONF;
  if (conf) spawnSync('radosgw-admin', ['-c', conf, 'gc', 'process', '--include-all'], { stdio: 'ignore', timeout: 120_000 });
}

// ---------- the proxy, production path ----------

interface Proxy {
  child: ChildProcess;
  port: number;
  adminPort: number;
  workers: string;
  stop: () => Promise<void>;
}

/** Every process this bench starts, killed on the way out even when a phase throws. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function kmsKeysFile(dir: string): string {
  const file = join(dir, 'kms-keys.json');
  if (!existsSync(file)) writeFileSync(file, JSON.stringify({ 'bench-key': randomBytes(32).toString('base64') }), { mode: 0o600 });
  return file;
}

async function startProxy(dir: string, workers: number, upstream = endpoint): Promise<Proxy> {
  const port = await freePort();
  const adminPort = await freePort();
  const child = spawn(process.execPath, [join(ROOT, 'bin/s3-ssec-proxy.js')], {
    env: {
      ...process.env,
      SSEC_PROXY_LISTEN: `127.0.0.1:${port}`,
      SSEC_PROXY_STATE_DIR: dir,
      SSEC_PROXY_UPSTREAM_URL: upstream,
      SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: accessKeyId,
      SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: secretAccessKey,
      SSEC_PROXY_UPSTREAM_REGION: region,
      SSEC_PROXY_WORKERS: String(workers),
      // SSE-S3 (issue 14) from the local KMS; SSE-C and pass-through requests never touch it.
      SSEC_PROXY_KMS_LOCAL_KEYS: kmsKeysFile(dir),
      SSEC_PROXY_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (c: Buffer) => {
      if (log.length < 100_000) log += c.toString();
      if (log.includes('listening on')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`proxy exited ${code}: ${log}`)));
  });
  // Workers may come up after the first line: give them a moment before counting processes.
  await new Promise((r) => setTimeout(r, 1500));
  const logged = /(\d+)\s+workers?\b/i.exec(log)?.[1] ?? /workers?[=:\s]+(\d+)/i.exec(log)?.[1];
  const processes = treeStat(child.pid!).processes;
  const workersSeen = `asked ${workers}, log says ${logged ?? '(nothing)'}, ${processes} process${processes > 1 ? 'es' : ''}`;
  progress(`proxy on :${port}: ${workersSeen}`);
  return {
    child,
    port,
    adminPort,
    workers: workersSeen,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      child.kill('SIGKILL');
    },
  };
}

// ---------- results ----------

interface Row {
  group: string;
  label: string;
  mibs?: number;
  cpuPerGiB?: number;
  /** The whole machine's CPU per GiB (client, proxy and store), and how busy its cores were meanwhile. */
  machinePerGiB?: number;
  busy?: number;
  rssMiB?: number;
  note?: string;
}
const rows: Row[] = [];
const targets: Array<{ text: string; value: string; met: boolean | undefined }> = [];
function target(text: string, value: number | undefined, limit: number, cmp: '>=' | '<=', fmt = (x: number) => x.toFixed(2)): void {
  const ok = value === undefined || !Number.isFinite(value) ? undefined : cmp === '>=' ? value >= limit : value <= limit;
  targets.push({ text, value: value === undefined || !Number.isFinite(value) ? 'not measured' : fmt(value), met: ok });
}

/** One PUT then GET of one SIZE object: seconds each and, when a process is given, its CPU seconds and peak RSS. */
interface PutGetRun {
  putS: number;
  getS: number;
  machinePut: number;
  machineGet: number;
  cpuPut?: number;
  cpuGet?: number;
  rss?: number;
}

async function measurePutGet(t: Target, label: string, pid?: number, getTarget: Target = t): Promise<PutGetRun> {
  const path = `/${bucket}/${label.replace(/[^a-z0-9]+/gi, '-')}.bin`;
  progress(`${label}: PUT ${SIZE / MiB} MiB`);
  const c0 = pid ? treeStat(pid).cpuSeconds : 0;
  const m0 = machineBusySeconds();
  const sampler = pid ? rssSampler(pid) : undefined;
  const putS = await timed(() => put(t, path, SIZE));
  const c1 = pid ? treeStat(pid).cpuSeconds : 0;
  const m1 = machineBusySeconds();
  progress(`${label}: GET`);
  const getS = await timed(() => get(getTarget, path, SIZE));
  const c2 = pid ? treeStat(pid).cpuSeconds : 0;
  const m2 = machineBusySeconds();
  const rss = sampler?.stop();
  await del(path);
  collectGarbage();
  return { putS, getS, machinePut: m1 - m0, machineGet: m2 - m1, ...(pid ? { cpuPut: c1 - c0, cpuGet: c2 - c1, rss } : {}) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The PUT and GET rows of a case: medians of its rounds, the spread of throughput in the note. */
function putGetRows(label: string, group: string, runs: PutGetRun[], extra: Partial<Row> = {}): { put: Row; get: Row } {
  const gib = SIZE / GiB;
  const row = (d: 'put' | 'get'): Row => {
    const mibs = runs.map((r) => SIZE / MiB / (d === 'put' ? r.putS : r.getS));
    const cpu = runs.map((r) => (d === 'put' ? r.cpuPut : r.cpuGet)).filter((c): c is number => c !== undefined);
    const rss = runs.map((r) => r.rss).filter((c): c is number => c !== undefined);
    const spread = runs.length > 1 ? `median of ${runs.length} (${Math.min(...mibs).toFixed(0)}–${Math.max(...mibs).toFixed(0)} MiB/s)` : '';
    const note = [extra.note, spread].filter(Boolean).join('; ');
    const machine = runs.map((r) => (d === 'put' ? r.machinePut : r.machineGet));
    const busy = runs.map((r) => (d === 'put' ? r.machinePut / r.putS : r.machineGet / r.getS) / CORES);
    return {
      group,
      label: `${label} ${d.toUpperCase()}`,
      mibs: median(mibs),
      machinePerGiB: median(machine) / gib,
      busy: median(busy),
      ...(cpu.length ? { cpuPerGiB: median(cpu) / gib } : {}),
      ...(rss.length ? { rssMiB: Math.max(...rss) } : {}),
      ...extra,
      ...(note ? { note } : {}),
    };
  };
  const r = { put: row('put'), get: row('get') };
  rows.push(r.put, r.get);
  return r;
}

/**
 * Cases measured in ROUNDS interleaved rounds (every case once per round, in order), then reported as medians in
 * the order given. A case that fails (RGW without native SSE-C) is reported and dropped.
 */
async function interleaved(
  cases: Array<{ key: string; label: string; group: string; t: Target; pid?: number; getTarget?: Target; extra?: Partial<Row> }>,
): Promise<Record<string, { put: Row; get: Row } | undefined>> {
  const runs = new Map<string, PutGetRun[]>(cases.map((c) => [c.key, []]));
  const failed = new Set<string>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const c of cases) {
      if (failed.has(c.key)) continue;
      if (ROUNDS > 1) progress(`round ${round}/${ROUNDS}`);
      try {
        runs.get(c.key)!.push(await measurePutGet(c.t, c.label, c.pid, c.getTarget));
      } catch (e) {
        failed.add(c.key);
        progress(`${c.label} failed: ${(e as Error).message.slice(0, 200)}`);
      }
    }
  }
  const out: Record<string, { put: Row; get: Row } | undefined> = {};
  for (const c of cases) out[c.key] = failed.has(c.key) ? undefined : putGetRows(c.label, c.group, runs.get(c.key)!, c.extra);
  return out;
}

// ---------- (a) the floor ----------

async function floor(cert: { certPem: string; keyPem: string; caPem: string }, direction: 'get' | 'put', crypto: 'aes' | 'plain'): Promise<Row> {
  const ca = cert.caPem;
  // The store's side: a raw TCP server that sends `size` bytes (get) or swallows them (put).
  let size = 0;
  let received = 0;
  let done = () => {};
  const raw = createNetServer((s) => {
    if (direction === 'get') {
      pipeline(body(size), s).catch(() => s.destroy());
    } else {
      s.on('data', (c: Buffer) => (received += c.length));
      s.on('end', () => (s.end(), done()));
    }
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  // With the V8 flag the bin starts the proxy with (bin/s3-ssec-proxy.js): like with like.
  const relay = spawn(process.execPath, ['--max-semi-space-size=2', join(ROOT, 'bench/floor.ts'), direction, crypto, String((raw.address() as AddressInfo).port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, FLOOR_CERT: cert.certPem, FLOOR_KEY: cert.keyPem },
  });
  children.add(relay);
  const port = await new Promise<number>((resolve, reject) => {
    relay.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
    relay.once('exit', (code) => reject(new Error(`floor relay exited ${code}`)));
  });
  const transfer = async (n: number) => {
    size = n;
    received = 0;
    const sunk = new Promise<void>((r) => (done = r));
    const tls = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    await new Promise<void>((r, j) => tls.once('secureConnect', r).once('error', j));
    if (direction === 'get') {
      await pipeline(tls, new Writable({ write: (_c: Buffer, _e, cb) => cb() }));
    } else {
      await pipeline(body(n), tls).catch(() => undefined);
      await sunk;
      tls.destroy();
      if (received < n) throw new Error(`floor ${direction} ${crypto}: ${received} of ${n} bytes arrived`);
    }
  };
  await transfer(WARMUP); // the proxy is warmed the same way before it is measured
  const c0 = treeStat(relay.pid!).cpuSeconds;
  const seconds = await timed(() => transfer(SIZE));
  const cpu = treeStat(relay.pid!).cpuSeconds - c0;
  relay.kill('SIGKILL');
  raw.close();
  const row: Row = {
    group: 'floor',
    label: `floor ${crypto === 'aes' ? 'TLS+AES-GCM' : 'TLS only'} ${direction.toUpperCase()}`,
    mibs: SIZE / MiB / seconds,
    cpuPerGiB: cpu / (SIZE / GiB),
  };
  return row;
}

// ---------- KMS calls ----------

async function kmsCallCount(p: Proxy): Promise<number> {
  const res = await request(`http://127.0.0.1:${p.adminPort}/metrics`);
  const text = await res.body.text();
  if (!text.includes('ssec_proxy_kms_calls_total')) throw new Error('the proxy reports no ssec_proxy_kms_calls_total');
  let n = 0;
  for (const m of text.matchAll(/^ssec_proxy_kms_calls_total(?:\{[^}]*\})? (\d+(?:\.\d+)?)$/gm)) n += Number(m[1]);
  return n;
}

async function kmsCallsForRangedGets(t: Target, p: Proxy): Promise<number> {
  const size = 16 * MiB;
  const path = `/${bucket}/kms-ranged.bin`;
  progress('SSE-KMS: 1,000 ranged GETs of one object (4 KiB at random offsets, 8 at a time)');
  const res = await send({ ...t, headers: { 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': 'bench-key' } }, 'PUT', path, { 'content-length': String(size) }, body(size));
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`SSE-KMS PUT: ${res.statusCode} ${text}`);
  const before = await kmsCallCount(p);
  let next = 0;
  const worker = async () => {
    while (next < 1000) {
      next++;
      const from = Math.floor(Math.random() * (size - 4096));
      const g = await send({ ...t, headers: {} }, 'GET', path, { range: `bytes=${from}-${from + 4095}` });
      const got = await g.body.arrayBuffer();
      if (g.statusCode !== 206 || got.byteLength !== 4096) throw new Error(`ranged GET: ${g.statusCode} ${got.byteLength}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const calls = (await kmsCallCount(p)) - before;
  await del(path);
  rows.push({ group: 'kms', label: 'SSE-KMS 1,000 ranged GETs of one object', note: `${calls} KMS calls (local KMS; unwrapped keys cached per process)` });
  return calls;
}

// ---------- (d) small objects ----------

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

async function smallObjects(t: Target, label: string, pid?: number) {
  progress(`${label}: ${SMALL_REQUESTS} requests of 4 KiB (PUT+GET), ${SMALL_CONCURRENCY} at a time`);
  const data = randomBytes(SMALL_SIZE);
  const lat: number[] = [];
  let next = 0;
  const pairs = SMALL_REQUESTS / 2;
  const worker = async () => {
    while (next < pairs) {
      const i = next++;
      const path = `/${bucket}/small/${label.replace(/[^a-z0-9]+/gi, '-')}-${i}`;
      let t0 = process.hrtime.bigint();
      const p = await send(t, 'PUT', path, { 'content-length': String(SMALL_SIZE) }, data);
      await p.body.dump();
      if (p.statusCode !== 200) throw new Error(`${label} small PUT ${p.statusCode}`);
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      t0 = process.hrtime.bigint();
      const g = await send(t, 'GET', path, {});
      const got = await g.body.arrayBuffer();
      if (g.statusCode !== 200 || got.byteLength !== SMALL_SIZE) throw new Error(`${label} small GET ${g.statusCode}`);
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  const c0 = pid ? treeStat(pid).cpuSeconds : 0;
  const m0 = machineBusySeconds();
  const seconds = await timed(() => Promise.all(Array.from({ length: SMALL_CONCURRENCY }, worker)).then(() => undefined));
  // The proxy's CPU per request says what it adds to a machine whose cores are all busy; the machine's (client,
  // proxy, store) bounds the request rate: cores / machine CPU per request.
  const cpuMs = pid ? ((treeStat(pid).cpuSeconds - c0) * 1000) / SMALL_REQUESTS : undefined;
  const machineMs = ((machineBusySeconds() - m0) * 1000) / SMALL_REQUESTS;
  const busy = (machineMs * SMALL_REQUESTS) / 1000 / seconds / CORES;
  lat.sort((a, b) => a - b);
  const r = { opsPerSec: SMALL_REQUESTS / seconds, p50: pct(lat, 50), p99: pct(lat, 99), cpuMs, machineMs, busy };
  rows.push({
    group: 'small',
    label: `4 KiB ${label}`,
    note: `${r.opsPerSec.toFixed(0)} req/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms${cpuMs === undefined ? '' : `, proxy CPU ${cpuMs.toFixed(2)} ms/request`}, machine CPU ${machineMs.toFixed(2)} ms/request (busy ${(busy * 100).toFixed(0)}%)`,
  });
  return r;
}

// ---------- (f) rclone crypt ----------

/** One crypt password for the whole run: a second one would not find (and `cat` would silently print nothing). */
let rclonePassword: string | undefined;

function rclone(dir: string, args: string[]): { seconds: number; cpuSeconds: number; machineSeconds: number; bytesOut: number } {
  // `times` after the command prints the CPU of the shell's children (rclone): user and system.
  // Without the caller's AWS_* variables (an AWS_CA_BUNDLE makes rclone's SDK refuse its transport).
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_'))),
    RCLONE_CONFIG: join(dir, 'rclone.conf'),
    RCLONE_CONFIG_BENCHS3_TYPE: 's3',
    RCLONE_CONFIG_BENCHS3_PROVIDER: 'Ceph',
    RCLONE_CONFIG_BENCHS3_ENDPOINT: endpoint,
    RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID: accessKeyId,
    RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY: secretAccessKey,
    RCLONE_CONFIG_BENCHS3_REGION: region,
    RCLONE_CONFIG_BENCHCRYPT_TYPE: 'crypt',
    RCLONE_CONFIG_BENCHCRYPT_REMOTE: `benchs3:${bucket}/rclone`,
    RCLONE_CONFIG_BENCHCRYPT_PASSWORD: (rclonePassword ??= spawnSync('rclone', ['obscure', randomBytes(16).toString('hex')], { encoding: 'utf8' }).stdout.trim()),
  };
  const t0 = process.hrtime.bigint();
  const m0 = machineBusySeconds();
  // The bytes rclone wrote are counted: `rclone cat` of a name it cannot find prints nothing and exits 0.
  const r = spawnSync('bash', ['-c', 'set -o pipefail; n=$(rclone "$@" | wc -c) || exit 1; echo "$n"; times', 'bash', ...args], { env, encoding: 'utf8', timeout: 600_000 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const machineSeconds = machineBusySeconds() - m0;
  if (r.status !== 0) throw new Error(`rclone ${args.join(' ')}: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const line = lines.pop()!;
  const cpuSeconds = [...line.matchAll(/(\d+)m([\d.]+)s/g)].reduce((s, m) => s + Number(m[1]) * 60 + Number(m[2]), 0);
  return { seconds, cpuSeconds, machineSeconds, bytesOut: Number(lines[0]) };
}

// ---------- main ----------

const direct: Target = { name: 'direct HTTP', origin: endpoint, agent: new Agent({ connections: 64, connect: { timeout: 60_000 } }), headers: {} };
const bucket = `bench-${Date.now().toString(36)}`;

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'ssec-bench-'));
  const cert = await ensureDevCertificate(dir);
  const key = randomBytes(32);
  const ssec = ssecHeaders(key);
  progress(`${QUICK ? 'quick' : 'full'} run: ${SIZE / MiB} MiB objects, N = ${WORKERS} workers, upstream ${endpoint}${tlsEndpoint ? ` and ${tlsEndpoint}` : ''}`);
  const mk = await send(direct, 'PUT', `/${bucket}`, {});
  await mk.body.dump();
  if (mk.statusCode !== 200) throw new Error(`create bucket: ${mk.statusCode}`);

  // (a) floors: in-process relays, medians of ROUNDS
  const floors: Record<string, Row> = {};
  for (const crypto of ['aes', 'plain'] as const)
    for (const d of ['put', 'get'] as const) {
      const runs: Row[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        progress(`floor ${crypto} ${d}${ROUNDS > 1 ? ` (${round}/${ROUNDS})` : ''}`);
        runs.push(await floor(cert, d, crypto));
      }
      const row: Row = { ...runs[0]!, mibs: median(runs.map((r) => r.mibs!)), cpuPerGiB: median(runs.map((r) => r.cpuPerGiB!)) };
      if (runs.length > 1) row.note = `median of ${runs.length} (${Math.min(...runs.map((r) => r.cpuPerGiB!)).toFixed(2)}–${Math.max(...runs.map((r) => r.cpuPerGiB!)).toFixed(2)} s/GiB)`;
      rows.push(row);
      floors[`${crypto}-${d}`] = row;
    }

  // (c) the proxy with 1 and N workers, started first so that every large case runs in the same rounds
  const proxies: Array<{ workers: number; p: Proxy; t: Target }> = [];
  for (const workers of [1, WORKERS]) {
    const p = await startProxy(dir, workers);
    proxies.push({ workers, p, t: { name: `proxy ${workers}w`, origin: `https://127.0.0.1:${p.port}`, agent: new Agent({ connections: 64, connect: { ca: cert.caPem, timeout: 60_000 } }), headers: ssec } });
  }
  const [one, many] = proxies as [(typeof proxies)[0], (typeof proxies)[0]];
  for (const { t } of proxies) {
    // A first transfer through each, as the floor relays get: JIT and TLS session state, not measured.
    await put(t, `/${bucket}/warmup`, WARMUP);
    await get(t, `/${bucket}/warmup`, WARMUP);
    await put({ ...t, headers: {} }, `/${bucket}/warmup`, WARMUP);
    await get({ ...t, headers: {} }, `/${bucket}/warmup`, WARMUP);
  }
  await del(`/${bucket}/warmup`);
  const note = (p: Proxy) => ({ note: p.workers });

  // (b) direct, HTTP and HTTPS; (g) RGW's own SSE-C over HTTP and over its TLS port (the proxy's client leg is
  // HTTPS: like with like); the proxy's cases. SSE-S3 (issue 14) beside SSE-C: the same path with the data key
  // from the local KMS; a GET names no key.
  const directTls: Target | undefined = tlsEndpoint ? { name: 'direct HTTPS', origin: tlsEndpoint, agent: new Agent({ connections: 64, connect: { ca: tlsCa, timeout: 60_000 } }), headers: {} } : undefined;
  if (!directTls) progress('no RGW_TLS_ENDPOINT: direct HTTPS not measured');
  const large = await interleaved([
    { key: 'dHttp', label: 'direct HTTP', group: 'direct', t: direct },
    ...(directTls ? [{ key: 'dHttps', label: 'direct HTTPS', group: 'direct', t: directTls }] : []),
    { key: 'native', label: 'RGW native SSE-C (HTTP)', group: 'direct', t: { ...direct, name: 'RGW SSE-C', headers: ssec } },
    ...(directTls ? [{ key: 'nativeTls', label: 'RGW native SSE-C (HTTPS)', group: 'direct', t: { ...directTls, name: 'RGW SSE-C HTTPS', headers: ssec } }] : []),
    { key: 'ssec1', label: 'proxy SSE-C 1 worker', group: 'proxy', t: one.t, pid: one.p.child.pid!, extra: note(one.p) },
    {
      key: 'sses3',
      label: 'proxy SSE-S3 1 worker',
      group: 'proxy',
      t: { ...one.t, headers: { 'x-amz-server-side-encryption': 'AES256' } },
      pid: one.p.child.pid!,
      getTarget: { ...one.t, headers: {} },
      extra: note(one.p),
    },
    { key: 'pass1', label: 'proxy pass-through 1 worker', group: 'proxy', t: { ...one.t, headers: {} }, pid: one.p.child.pid!, extra: note(one.p) },
    { key: 'ssecN', label: `proxy SSE-C ${WORKERS} workers`, group: 'proxy', t: many.t, pid: many.p.child.pid!, extra: note(many.p) },
  ]);
  const dHttp = large.dHttp!;
  const dHttps = large.dHttps;
  const native = large.native;
  const nativeTls = large.nativeTls;
  const ssec1 = large.ssec1!;
  const sses3 = large.sses3!;
  const pass1 = large.pass1!;

  // multipart, 64 MiB parts (16 MiB in --quick), four at a time: direct HTTPS (or HTTP) against the proxy
  const part = QUICK ? 16 * MiB : 64 * MiB;
  const multipart = async (t: Target, label: string, pid?: number) => {
    progress(`${label}: multipart PUT of ${SIZE / MiB} MiB`);
    const path = `/${bucket}/mp-${label.replace(/[^a-z0-9]+/gi, '-')}.bin`;
    const c0 = pid ? treeStat(pid).cpuSeconds : 0;
    const seconds = await timed(async () => {
      const created = await send(t, 'POST', path, {}, undefined, { uploads: '' });
      const xml = await created.body.text();
      const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(xml)?.[1];
      if (!uploadId) throw new Error(`${label} create: ${created.statusCode} ${xml}`);
      const count = Math.ceil(SIZE / part);
      const etags: string[] = [];
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const i = next++;
          const n = Math.min(part, SIZE - i * part);
          const res = await send(t, 'PUT', path, { 'content-length': String(n) }, body(n), { partNumber: String(i + 1), uploadId });
          await res.body.dump();
          if (res.statusCode !== 200) throw new Error(`${label} part ${i + 1}: ${res.statusCode}`);
          etags[i] = String(res.headers['etag']);
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      const xmlDone = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
      const done = await send(t, 'POST', path, { 'content-length': String(Buffer.byteLength(xmlDone)) }, Buffer.from(xmlDone), { uploadId });
      const text = await done.body.text();
      if (done.statusCode !== 200 || text.includes('<Error>')) throw new Error(`${label} complete: ${text}`);
    });
    const cpu = pid ? treeStat(pid).cpuSeconds - c0 : undefined;
    await del(path);
    collectGarbage();
    const row: Row = { group: 'multipart', label: `${label} multipart PUT`, mibs: SIZE / MiB / seconds, ...(cpu !== undefined ? { cpuPerGiB: cpu / (SIZE / GiB) } : {}) };
    rows.push(row);
    return row;
  };
  const mpDirect = await multipart(directTls ?? direct, directTls ? 'direct HTTPS' : 'direct HTTP');
  await multipart(one.t, 'proxy SSE-C 1 worker', one.p.child.pid!);

  // KMS calls per 1,000 ranged GETs of one SSE-KMS object (issue 14): the proxy's own counter, before and after.
  const kmsPerThousand = await kmsCallsForRangedGets(one.t, one.p);

  // (d) small objects
  const smallDirect = directTls ? await smallObjects(directTls, 'direct HTTPS') : undefined;
  const smallHttp = await smallObjects(direct, 'direct HTTP');
  const smallProxy = await smallObjects(one.t, 'proxy SSE-C 1 worker', one.p.child.pid!);
  await smallObjects({ ...one.t, headers: {} }, 'proxy pass-through 1 worker', one.p.child.pid!);
  await smallObjects(many.t, `proxy SSE-C ${WORKERS} workers`, many.p.child.pid!);
  const smallBase = smallDirect ?? smallHttp;
  for (const p of proxies) await p.p.stop();

  // (f) rclone crypt over HTTP to the same RGW, the same size, one single PUT like the proxy's
  let rc: { put: Row; get: Row } | undefined;
  if (existsSync('/usr/bin/rclone') || spawnSync('rclone', ['version']).status === 0) try {
    const file = join(dir, 'rclone-src.bin');
    await pipeline(body(SIZE), (await import('node:fs')).createWriteStream(file));
    progress('rclone crypt: copyto (single PUT)');
    const w = rclone(dir, ['copyto', file, 'benchcrypt:obj', '--s3-upload-cutoff', '5G', '--s3-disable-checksum', '-q']);
    progress('rclone crypt: cat');
    const r = rclone(dir, ['cat', 'benchcrypt:obj', '-q']);
    if (r.bytesOut !== SIZE) throw new Error(`rclone cat returned ${r.bytesOut} bytes, not ${SIZE}`);
    rmSync(file);
    const gib = SIZE / GiB;
    rc = {
      put: { group: 'rclone', label: 'rclone crypt PUT', mibs: SIZE / MiB / w.seconds, cpuPerGiB: w.cpuSeconds / gib, machinePerGiB: w.machineSeconds / gib, busy: w.machineSeconds / w.seconds / CORES, note: 'client-side XSalsa20-Poly1305, HTTP; CPU is rclone\'s, process start included' },
      get: { group: 'rclone', label: 'rclone crypt GET', mibs: SIZE / MiB / r.seconds, cpuPerGiB: r.cpuSeconds / gib, machinePerGiB: r.machineSeconds / gib, busy: r.machineSeconds / r.seconds / CORES, note: 'client-side XSalsa20-Poly1305, HTTP; CPU is rclone\'s, process start included' },
    };
    rows.push(rc.put, rc.get);
  } catch (e) {
    progress(`rclone crypt not measured: ${(e as Error).message.slice(0, 300)}`);
  } else progress('rclone not installed: rclone crypt not measured');

  // N-worker scaling against a null upstream in this process (answers every request, discards bodies): the
  // store's CPU is out of the way, the client's is not. SSE-C PUT, 8 streams at once.
  const nullServer = createHttpServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      res.writeHead(200, { etag: '"d41d8cd98f00b204e9800998ecf8427e"', 'content-length': 0 });
      res.end();
    });
  });
  await new Promise<void>((r) => nullServer.listen(0, '127.0.0.1', r));
  const nullUrl = `http://127.0.0.1:${(nullServer.address() as AddressInfo).port}`;
  const scaling: Record<number, number> = {};
  const scalingBusy: Record<number, number> = {};
  for (const workers of [1, WORKERS]) {
    const p = await startProxy(dir, workers, nullUrl);
    const t: Target = { name: `null ${workers}w`, origin: `https://127.0.0.1:${p.port}`, agent: new Agent({ connections: 16, connect: { ca: cert.caPem, timeout: 60_000 } }), headers: ssec };
    progress(`scaling, ${workers} worker(s), null upstream: 8 SSE-C PUT streams of ${SIZE / 8 / MiB} MiB`);
    const c0 = treeStat(p.child.pid!).cpuSeconds;
    const m0 = machineBusySeconds();
    const seconds = await timed(() => Promise.all(Array.from({ length: 8 }, (_, i) => put(t, `/${bucket}/null-${i}`, SIZE / 8))).then(() => undefined));
    const cpu = treeStat(p.child.pid!).cpuSeconds - c0;
    const machine = machineBusySeconds() - m0;
    scaling[workers] = SIZE / MiB / seconds;
    scalingBusy[workers] = machine / seconds / CORES;
    rows.push({
      group: 'scaling',
      label: `null upstream SSE-C PUT ${workers}w`,
      mibs: scaling[workers],
      cpuPerGiB: cpu / (SIZE / GiB),
      machinePerGiB: machine / (SIZE / GiB),
      busy: scalingBusy[workers],
      note: p.workers,
    });
    await t.agent.close();
    await p.stop();
  }
  nullServer.close();

  // (e) peak RSS, fresh 1-worker proxy: 64 SSE-C PUT streams at once, then 64 GETs of them
  const rssProxy = await startProxy(dir, 1);
  const rt: Target = { name: 'rss', origin: `https://127.0.0.1:${rssProxy.port}`, agent: new Agent({ connections: STREAMS, connect: { ca: cert.caPem, timeout: 60_000 } }), headers: ssec };
  const idle = treeStat(rssProxy.child.pid!).rssMiB;
  const sampler = rssSampler(rssProxy.child.pid!);
  progress(`RSS: ${STREAMS} SSE-C PUT streams of ${STREAM_SIZE / MiB} MiB at once`);
  const putS = await timed(() => Promise.all(Array.from({ length: STREAMS }, (_, i) => put(rt, `/${bucket}/s-${i}`, STREAM_SIZE))).then(() => undefined));
  progress(`RSS: ${STREAMS} GETs at once`);
  const getS = await timed(() => Promise.all(Array.from({ length: STREAMS }, (_, i) => get(rt, `/${bucket}/s-${i}`, STREAM_SIZE))).then(() => undefined));
  const peakRss = sampler.stop();
  await rt.agent.close();
  await rssProxy.stop();
  for (let i = 0; i < STREAMS; i++) await del(`/${bucket}/s-${i}`);
  collectGarbage();
  const total = (STREAMS * STREAM_SIZE) / MiB;
  rows.push({ group: 'rss', label: `${STREAMS} streams of ${STREAM_SIZE / MiB} MiB`, rssMiB: peakRss, note: `idle ${idle.toFixed(0)} MiB; PUT ${(total / putS).toFixed(0)} MiB/s, GET ${(total / getS).toFixed(0)} MiB/s aggregate` });

  // ---------- targets ----------
  const ratio = (a?: number, b?: number) => (a !== undefined && b ? a / b : undefined);
  /**
   * Why a throughput ratio is what it is: with the cores busy in both cases, throughput is the cores over the whole
   * machine's CPU per byte, so the ratio cannot exceed the inverse ratio of the two cases' machine CPU per GiB.
   */
  const bound = (a: Row, b: Row | undefined) =>
    b?.machinePerGiB && a.machinePerGiB && a.busy !== undefined && b.busy !== undefined
      ? `; busy ${(a.busy * 100).toFixed(0)}%/${(b.busy * 100).toFixed(0)}%, machine CPU ${a.machinePerGiB.toFixed(2)} vs ${b.machinePerGiB.toFixed(2)} s/GiB: CPU-bound limit ${(b.machinePerGiB / a.machinePerGiB).toFixed(2)}×`
      : '';
  for (const d of ['put', 'get'] as const) {
    const D = d.toUpperCase();
    target(`SSE-C CPU/GiB ${D} ≤ 1.5× floor (TLS+AES-GCM)`, ratio(ssec1[d].cpuPerGiB, floors[`aes-${d}`]!.cpuPerGiB), 1.5, '<=', (x) => `${x.toFixed(2)}×`);
  }
  for (const d of ['put', 'get'] as const) {
    const D = d.toUpperCase();
    target(`pass-through CPU/GiB ${D} ≤ 1.3× floor (TLS only)`, ratio(pass1[d].cpuPerGiB, floors[`plain-${d}`]!.cpuPerGiB), 1.3, '<=', (x) => `${x.toFixed(2)}×`);
  }
  for (const d of ['put', 'get'] as const) {
    const D = d.toUpperCase();
    target(`proxy SSE-C ${D} ≥ 0.9× direct HTTPS`, ratio(ssec1[d].mibs, dHttps?.[d].mibs), 0.9, '>=', (x) => `${x.toFixed(2)}×${bound(ssec1[d], dHttps?.[d])}`);
  }
  for (const d of ['put', 'get'] as const) {
    const D = d.toUpperCase();
    target(`proxy SSE-C ${D} ≥ 1.0× RGW native SSE-C (HTTP)`, ratio(ssec1[d].mibs, native?.[d].mibs), 1.0, '>=', (x) => `${x.toFixed(2)}×${bound(ssec1[d], native?.[d])}`);
  }
  for (const d of ['put', 'get'] as const) {
    const D = d.toUpperCase();
    target(`proxy SSE-C ${D} ≥ 1.0× RGW native SSE-C (HTTPS)`, ratio(ssec1[d].mibs, nativeTls?.[d].mibs), 1.0, '>=', (x) => `${x.toFixed(2)}×${bound(ssec1[d], nativeTls?.[d])}`);
  }
  for (const d of ['put', 'get'] as const) {
    const D = d.toUpperCase();
    target(`SSE-S3 ${D} within 5% of SSE-C (throughput)`, ratio(sses3[d].mibs, ssec1[d].mibs), 0.95, '>=', (x) => `${x.toFixed(2)}× (CPU ${sses3[d].cpuPerGiB?.toFixed(2)} vs ${ssec1[d].cpuPerGiB?.toFixed(2)} s/GiB)`);
  }
  target('KMS calls per 1,000 ranged GETs of one object (reported; ≤ 1 per worker)', kmsPerThousand, 1, '<=', (x) => x.toFixed(0));
  target('4 KiB req/s via proxy ≥ 0.8× direct', ratio(smallProxy.opsPerSec, smallBase.opsPerSec), 0.8, '>=', (x) =>
    `${x.toFixed(2)}×; busy ${(smallProxy.busy * 100).toFixed(0)}%/${(smallBase.busy * 100).toFixed(0)}%, machine CPU ${smallProxy.machineMs.toFixed(2)} vs ${smallBase.machineMs.toFixed(2)} ms/request: CPU-bound limit ${(smallBase.machineMs / smallProxy.machineMs).toFixed(2)}×`);
  target('4 KiB added p99 ≤ 2 ms', smallProxy.p99 - smallBase.p99, 2, '<=', (x) => `${x.toFixed(1)} ms (p50 +${(smallProxy.p50 - smallBase.p50).toFixed(1)} ms)`);
  for (const d of ['put', 'get'] as const) {
    const D = d.toUpperCase();
    target(`proxy SSE-C ${D} ≥ 1.0× rclone crypt`, ratio(ssec1[d].mibs, rc?.[d].mibs), 1.0, '>=', (x) => `${x.toFixed(2)}×${bound(ssec1[d], rc?.[d])}`);
  }
  target(`${WORKERS}-worker scaling ≥ ${(0.8 * WORKERS).toFixed(1)}× (null upstream, SSE-C PUT)`, ratio(scaling[WORKERS], scaling[1]), 0.8 * WORKERS, '>=', (x) =>
    `${x.toFixed(2)}×; machine busy ${((scalingBusy[1] ?? 0) * 100).toFixed(0)}% with 1 worker on ${CORES} cores${(scalingBusy[1] ?? 0) >= 0.9 ? ': no idle core for another worker' : ''}`);
  target(`peak RSS ≤ 256 MiB at ${STREAMS} streams`, peakRss, 256, '<=', (x) => `${x.toFixed(0)} MiB`);

  // ---------- output ----------
  const fmt = (x: number | undefined, d = 0) => (x === undefined ? '' : x.toFixed(d));
  const baselineOf = (r: Row): string => {
    const m = /^proxy (SSE-C|SSE-S3|pass-through) .*(PUT|GET)$/.exec(r.label);
    if (!m) return '';
    const d = m[2]!.toLowerCase() as 'put' | 'get';
    const base = dHttps?.[d] ?? dHttp[d];
    return `${(r.mibs! / base.mibs!).toFixed(2)}× ${dHttps ? 'HTTPS' : 'HTTP'}`;
  };
  console.log(`\ns3-ssec-proxy bench, ${QUICK ? 'quick' : 'full'}: ${SIZE / MiB} MiB objects, node ${process.version}, ${spawnSync('nproc').stdout.toString().trim()} cores shared by client, proxy and RGW`);
  console.log(`${'case'.padEnd(44)} ${'MiB/s'.padStart(7)} ${'ratio'.padStart(13)} ${'CPU s/GiB'.padStart(10)} ${'machine'.padStart(8)} ${'busy'.padStart(5)} ${'RSS MiB'.padStart(8)}  note`);
  for (const r of rows) {
    const ratioText = r.group === 'multipart' && r.label.startsWith('proxy') ? `${(r.mibs! / mpDirect.mibs!).toFixed(2)}× direct` : baselineOf(r);
    const busy = r.busy === undefined ? '' : `${(r.busy * 100).toFixed(0)}%`;
    console.log(`${r.label.padEnd(44)} ${fmt(r.mibs).padStart(7)} ${ratioText.padStart(13)} ${fmt(r.cpuPerGiB, 2).padStart(10)} ${fmt(r.machinePerGiB, 2).padStart(8)} ${busy.padStart(5)} ${fmt(r.rssMiB).padStart(8)}  ${r.note ?? ''}`);
  }
  console.log('\ntargets');
  for (const t of targets) console.log(`  ${t.met === undefined ? 'n/a    ' : t.met ? 'met    ' : 'NOT met'}  ${t.text.padEnd(52)} ${t.value}`);
  writeFileSync(svgPath, svg(rows, QUICK));
  console.log(`\nchart: ${svgPath}`);
  console.log(JSON.stringify({ quick: QUICK, sizeMiB: SIZE / MiB, workers: WORKERS, rows, targets }));
  await direct.agent.close();
  await directTls?.agent.close();
  rmSync(dir, { recursive: true, force: true });
}

/** Two horizontal bar charts side by side: throughput per case, and CPU seconds per GiB where measured. */
function svg(all: Row[], quick: boolean): string {
  const bars = all.filter((r) => r.mibs !== undefined);
  const rowH = 18;
  const top = 40;
  const labelW = 250;
  const barW = 260;
  const gap = 60;
  const height = top + bars.length * rowH + 30;
  const width = labelW + barW + gap + barW + 60;
  const maxT = Math.max(...bars.map((r) => r.mibs!));
  const maxC = Math.max(...bars.map((r) => r.cpuPerGiB ?? 0), 0.01);
  const color: Record<string, string> = { floor: '#7f7f7f', direct: '#1f77b4', proxy: '#d62728', multipart: '#9467bd', rclone: '#2ca02c', scaling: '#ff7f0e' };
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${labelW}" y="16" font-weight="bold">throughput, MiB/s${quick ? ' (quick run)' : ''}</text>`,
    `<text x="${labelW + barW + gap}" y="16" font-weight="bold">proxy (or floor, rclone) CPU s per GiB</text>`,
    `<text x="${labelW}" y="30" fill="#555">${esc(`${SIZE / MiB} MiB objects; client, proxy and RGW share the machine`)}</text>`,
  ];
  bars.forEach((r, i) => {
    const y = top + i * rowH;
    const c = color[r.group] ?? '#333';
    const wT = (r.mibs! / maxT) * barW;
    out.push(`<text x="${labelW - 6}" y="${y + 12}" text-anchor="end">${esc(r.label)}</text>`);
    out.push(`<rect x="${labelW}" y="${y + 2}" width="${wT.toFixed(1)}" height="${rowH - 5}" fill="${c}"/>`);
    out.push(`<text x="${(labelW + wT + 4).toFixed(1)}" y="${y + 12}">${r.mibs!.toFixed(0)}</text>`);
    if (r.cpuPerGiB !== undefined) {
      const wC = (r.cpuPerGiB / maxC) * barW;
      const x0 = labelW + barW + gap;
      out.push(`<rect x="${x0}" y="${y + 2}" width="${wC.toFixed(1)}" height="${rowH - 5}" fill="${c}" fill-opacity="0.7"/>`);
      out.push(`<text x="${(x0 + wC + 4).toFixed(1)}" y="${y + 12}">${r.cpuPerGiB.toFixed(2)}</text>`);
    }
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

await main();
