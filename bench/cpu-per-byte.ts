/**
 * The proxy's CPU per GiB of body, and the platform's floor, measured quietly: the proxy (the real CLI) runs as
 * its own process in front of a null upstream in this process, and its CPU is read from /proc/<pid>/stat (user +
 * system, all threads) around each transfer. The client and the null upstream run here, so their work is not
 * counted. Each floor runs in a child process of its own (the measured side only; its counterpart runs here) and
 * reports its own process.cpuUsage(). CPU seconds do not depend on what else runs on the machine (wall time does).
 *
 * Usage: node --import tsx bench/cpu-per-byte.ts [--size-mib 512] [--reps 1] [--only proxy|floor] [--kinds ssec,pass] [--dist]
 *   --dist runs the built proxy (bin/s3-ssec-proxy.js over dist/, `npm run build`) instead of src/ through tsx.
 *   --kinds ssec,pass chooses the proxy runs (SSE-C, pass-through); --only proxy|floor skips the other half.
 *   BENCH_PROXY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the proxy.
 * Progress goes to stderr; the last line on stdout is one JSON object (seconds of CPU per GiB).
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent, request, stream as undiciStream } from 'undici';
import { createUpstreamSigner } from '../src/sigv4/sign.ts';
import { ensureDevCertificate } from '../src/tls/dev-cert.ts';
import { freePort } from '../test/support/net.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const SELF = new URL(import.meta.url).pathname;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const PIECE = 64 * 1024;
const region = 'us-east-1';
const accessKeyId = 'CPUBENCHACCESSKEY001';
const secretAccessKey = 'cpubenchsecretkey0000000000000000000000000';

const { values: args } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '512' },
    reps: { type: 'string', default: '1' },
    only: { type: 'string' },
    kinds: { type: 'string', default: 'ssec,pass' },
    dist: { type: 'boolean', default: false },
    floor: { type: 'string' },
    port: { type: 'string' },
  },
});
const SIZE = Number(args['size-mib']) * MiB;
const REPS = Math.max(1, Number(args.reps));

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

function cpuOfPid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 10 ms
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

/** SIZE bytes in 1 MiB pieces of one random block (the producer's cost is negligible). */
function source(size: number, piece = MiB): Readable {
  const block = randomBytes(piece);
  let sent = 0;
  return new Readable({
    highWaterMark: 4 * MiB,
    read() {
      if (sent >= size) return void this.push(null);
      const n = Math.min(piece, size - sent);
      sent += n;
      this.push(n === piece ? block : block.subarray(0, n));
    },
  });
}

function sink(): Writable & { bytes: number } {
  const w = new Writable({
    highWaterMark: 4 * MiB,
    write(c: Buffer, _e, cb) {
      w.bytes += c.length;
      cb();
    },
  }) as Writable & { bytes: number };
  w.bytes = 0;
  return w;
}

// ---------------------------------------------------------------------------------------------------------------
// The null upstream: swallows PUT bodies (keeping them by reference for the GET that follows), serves them back.

interface Kept {
  body: Buffer[];
  size: number;
  headers: Record<string, string>;
}

function startNullUpstream(): Promise<{ url: string; close: () => void; requests: string[] }> {
  const objects = new Map<string, Kept>();
  const requests: string[] = [];
  const server = http.createServer({ highWaterMark: 4 * MiB }, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const path = url.pathname;
    if (url.search !== '' && !url.searchParams.has('x-id')) {
      // Subresources (bucket policy, ...): none exist.
      req.resume();
      res.writeHead(404, { 'content-type': 'application/xml' });
      return res.end('<?xml version="1.0"?><Error><Code>NoSuchBucketPolicy</Code><Message>none</Message></Error>');
    }
    if (req.method === 'PUT') {
      const body: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        body.push(c);
        size += c.length;
      });
      req.on('end', () => {
        const headers: Record<string, string> = { etag: `"${createHash('md5').update(path).digest('hex')}"` };
        for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-amz-meta-') || k === 'content-type') headers[k] = String(v);
        objects.set(path, { body, size, headers });
        res.writeHead(200, { etag: headers.etag });
        res.end();
      });
      return;
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      req.resume();
      const o = objects.get(path);
      if (!o) {
        res.writeHead(404, { 'content-type': 'application/xml' });
        return res.end('<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>none</Message></Error>');
      }
      let start = 0;
      let end = o.size - 1;
      let status = 200;
      const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
      if (m) {
        if (m[1] === '') start = Math.max(0, o.size - Number(m[2]));
        else {
          start = Number(m[1]);
          if (m[2] !== '') end = Math.min(end, Number(m[2]));
        }
        status = 206;
      }
      const headers: Record<string, string> = {
        ...o.headers,
        'content-length': String(end - start + 1),
        'last-modified': new Date(0).toUTCString(),
        'accept-ranges': 'bytes',
      };
      if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${o.size}`;
      res.writeHead(status, headers);
      if (req.method === 'HEAD') return res.end();
      Readable.from(slices(o.body, start, end + 1)).pipe(res);
      return;
    }
    req.resume();
    res.writeHead(405);
    res.end();
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({ url: `http://127.0.0.1:${port}`, close: () => server.close(), requests });
    });
  });
}

function* slices(pieces: Buffer[], start: number, end: number): Generator<Buffer> {
  let pos = 0;
  for (const p of pieces) {
    const pEnd = pos + p.length;
    if (pEnd > start && pos < end) yield p.subarray(Math.max(0, start - pos), Math.min(p.length, end - pos));
    pos = pEnd;
    if (pos >= end) return;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The proxy as its own process (the real CLI), and a client here.

async function startProxy(dir: string, upstreamUrl: string) {
  const port = await freePort();
  const nodeArgs = (process.env.BENCH_PROXY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // --dist: the built proxy (`npm run build`) started by the bin, as deployed (with the bin's V8 flags); else the
  // sources through tsx (a larger heap to mark).
  const entry = args.dist ? [join(ROOT, 'bin/s3-ssec-proxy.js')] : ['--import', 'tsx', join(ROOT, 'src/main.ts')];
  const proxy = spawn(process.execPath, [...nodeArgs, ...entry], {
    env: {
      ...process.env,
      SSEC_PROXY_LISTEN: `127.0.0.1:${port}`,
      SSEC_PROXY_STATE_DIR: dir,
      SSEC_PROXY_UPSTREAM_URL: upstreamUrl,
      SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: accessKeyId,
      SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: secretAccessKey,
      SSEC_PROXY_UPSTREAM_REGION: region,
      SSEC_PROXY_LOG_LEVEL: 'warn',
      SSEC_PROXY_WORKERS: '1', // one process: the CPU read from /proc is the proxy's own
    },
    stdio: ['ignore', process.env.BENCH_PROXY_STDERR ? 'inherit' : 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    proxy.stderr!.on('data', (c: Buffer) => {
      if (process.env.BENCH_PROXY_STDERR) appendFileSync(process.env.BENCH_PROXY_STDERR, c);
      err += c.toString();
      if (err.includes('listening on')) resolve();
    });
    proxy.on('exit', (code) => reject(new Error(`proxy exited ${code}: ${err}`)));
  });
  return { proxy, port };
}

const signer = createUpstreamSigner({ accessKeyId, secretAccessKey, region });

async function send(origin: string, agent: Agent, method: 'PUT' | 'GET', path: string, headers: Record<string, string>, body?: Readable) {
  const url = new URL(origin);
  const signed = await signer.sign({
    method,
    protocol: 'https:',
    hostname: url.hostname,
    port: Number(url.port),
    path,
    query: {},
    headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...headers },
  });
  return request(signed.url, { method, headers: signed.headers, body: body ?? null, dispatcher: agent });
}

async function proxyRuns(): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'ssec-cpu-bench-'));
  const cert = await ensureDevCertificate(dir);
  const up = await startNullUpstream();
  const { proxy, port } = await startProxy(dir, up.url);
  const origin = `https://127.0.0.1:${port}`;
  const agent = new Agent({ connect: { ca: cert.caPem } });
  const key = randomBytes(32);
  const ssec = {
    'x-amz-server-side-encryption-customer-algorithm': 'AES256',
    'x-amz-server-side-encryption-customer-key': key.toString('base64'),
    'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(key).digest('base64'),
  };
  const gib = SIZE / GiB;
  const out: Record<string, number[]> = { ssecPut: [], ssecGet: [], passPut: [], passGet: [] };
  let peakRss = 0;
  const once = async (name: string, kind: 'ssec' | 'pass') => {
    const headers = kind === 'ssec' ? ssec : {};
    const path = `/cpu-bench/${kind}.bin`;
    let c0 = cpuOfPid(proxy.pid!);
    let t0 = process.hrtime.bigint();
    const put = await send(origin, agent, 'PUT', path, { ...headers, 'content-length': String(SIZE) }, source(SIZE));
    const text = await put.body.text();
    if (put.statusCode !== 200) throw new Error(`${name} PUT ${put.statusCode} ${text}`);
    let c1 = cpuOfPid(proxy.pid!);
    const putWall = Number(process.hrtime.bigint() - t0) / 1e9;
    out[`${kind}Put`]!.push((c1 - c0) / gib);
    c0 = c1;
    t0 = process.hrtime.bigint();
    const get = await send(origin, agent, 'GET', path, headers);
    if (get.statusCode !== 200) throw new Error(`${name} GET ${get.statusCode} ${await get.body.text()}`);
    const s = sink();
    await pipeline(get.body, s);
    if (s.bytes !== SIZE) throw new Error(`${name} GET returned ${s.bytes} bytes`);
    c1 = cpuOfPid(proxy.pid!);
    const getWall = Number(process.hrtime.bigint() - t0) / 1e9;
    out[`${kind}Get`]!.push((c1 - c0) / gib);
    log(
      `${name}: PUT ${out[`${kind}Put`]!.at(-1)!.toFixed(2)} s/GiB (${(SIZE / MiB / putWall).toFixed(0)} MiB/s), ` +
        `GET ${out[`${kind}Get`]!.at(-1)!.toFixed(2)} s/GiB (${(SIZE / MiB / getWall).toFixed(0)} MiB/s)`,
    );
  };
  try {
    // A small warm-up (JIT, TLS session, connection pools) that is not counted.
    const warm = await send(origin, agent, 'PUT', '/cpu-bench/warm.bin', { ...ssec, 'content-length': String(4 * MiB) }, source(4 * MiB));
    await warm.body.text();
    const wg = await send(origin, agent, 'GET', '/cpu-bench/warm.bin', ssec);
    await wg.body.dump({ limit: Infinity });
    const kinds = args.kinds.split(',');
    for (let r = 0; r < REPS; r++) {
      if (kinds.includes('ssec')) await once('SSE-C', 'ssec');
      if (kinds.includes('pass')) await once('pass-through', 'pass');
    }
    peakRss = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${proxy.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } finally {
    // Waits for the proxy to exit: a --cpu-prof profile is written then.
    const exited = new Promise((r) => proxy.once('exit', r));
    proxy.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    up.close();
    await agent.close();
  }
  const result = Object.fromEntries(Object.entries(out).filter(([, v]) => v.length).map(([k, v]) => [k, median(v)]));
  return { ...result, peakRssMiB: peakRss };
}

// ---------------------------------------------------------------------------------------------------------------
// Floors: each measured side in a child process (this script with --floor NAME), reporting its own CPU.

type FloorName = 'tcpRead' | 'tcpWrite' | 'tlsRead' | 'tlsWrite' | 'undiciRead' | 'aesGcm' | 'aesGcmConcat';

/** In the child: do the measured side of `name` and print its CPU seconds. */
async function floorChild(name: FloorName): Promise<void> {
  const port = Number(args.port);
  const t0 = process.cpuUsage();
  const done = () => {
    const u = process.cpuUsage(t0);
    process.stdout.write(`${JSON.stringify({ cpu: (u.user + u.system) / 1e6 })}\n`);
  };
  switch (name) {
    case 'tcpRead':
    case 'tlsRead': {
      const sock = name === 'tcpRead' ? net.connect(port, '127.0.0.1') : tls.connect({ port, host: '127.0.0.1', ca: process.env.CPU_BENCH_CA });
      let n = 0;
      sock.on('data', (c: Buffer) => (n += c.length));
      await new Promise((r) => sock.on('end', r));
      if (n !== SIZE) throw new Error(`${name}: ${n} bytes`);
      return done();
    }
    case 'tcpWrite':
    case 'tlsWrite': {
      const sock = name === 'tcpWrite' ? net.connect(port, '127.0.0.1') : tls.connect({ port, host: '127.0.0.1', ca: process.env.CPU_BENCH_CA });
      await new Promise((r) => sock.once(name === 'tcpWrite' ? 'connect' : 'secureConnect', r));
      await pipeline(source(SIZE, PIECE), sock);
      return done();
    }
    case 'undiciRead': {
      const s = sink();
      await undiciStream(`http://127.0.0.1:${port}/`, { method: 'GET' }, () => s);
      if (s.bytes !== SIZE) throw new Error(`undici: ${s.bytes} bytes`);
      return done();
    }
    case 'aesGcm':
    case 'aesGcmConcat': {
      const key = randomBytes(32);
      const iv = Buffer.alloc(12);
      const plain = randomBytes(PIECE);
      const header = randomBytes(24);
      const out = Buffer.allocUnsafe(PIECE + 40);
      for (let i = 0; i < SIZE / PIECE; i++) {
        iv.writeUInt32BE(i, 8);
        const c = createCipheriv('aes-256-gcm', key, iv);
        c.setAAD(header);
        if (name === 'aesGcm') {
          const ct = c.update(plain);
          c.final();
          ct.copy(out, 24);
          c.getAuthTag().copy(out, 24 + PIECE);
        } else {
          Buffer.concat([header, c.update(plain), c.final(), c.getAuthTag()]);
        }
      }
      return done();
    }
  }
}

/** Here: the counterpart of a floor, then the child's CPU. */
async function floor(name: FloorName, certPem: { cert: string; key: string; ca: string }): Promise<number> {
  let server: net.Server | undefined;
  const childArgs: string[] = [];
  if (name === 'tcpRead' || name === 'tcpWrite') {
    server = net.createServer((sock) => {
      if (name === 'tcpRead') void pipeline(source(SIZE, PIECE), sock);
      else sock.resume();
    });
  } else if (name === 'tlsRead' || name === 'tlsWrite') {
    server = tls.createServer({ cert: certPem.cert, key: certPem.key }, (sock) => {
      if (name === 'tlsRead') void pipeline(source(SIZE, PIECE), sock);
      else sock.resume();
    });
  } else if (name === 'undiciRead') {
    server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(SIZE) });
      void pipeline(source(SIZE, PIECE), res);
    });
  }
  if (server) {
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    childArgs.push('--port', String((server.address() as net.AddressInfo).port));
  }
  // With the V8 flag the bin starts the proxy with (bin/s3-ssec-proxy.js): like with like.
  const child = spawn(process.execPath, ['--max-semi-space-size=2', '--import', 'tsx', SELF, '--floor', name, '--size-mib', String(SIZE / MiB), ...childArgs], {
    env: { ...process.env, CPU_BENCH_CA: certPem.ca },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  const code = await new Promise((r) => child.on('exit', r));
  server?.close();
  if (code !== 0) throw new Error(`floor ${name} exited ${code}`);
  return (JSON.parse(stdout.trim().split('\n').at(-1)!) as { cpu: number }).cpu / (SIZE / GiB);
}

async function floors(): Promise<Record<FloorName, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'ssec-cpu-floor-'));
  const cert = await ensureDevCertificate(dir);
  const pem = { cert: cert.certPem, key: cert.keyPem, ca: cert.caPem };
  const names: FloorName[] = ['tcpRead', 'tcpWrite', 'tlsRead', 'tlsWrite', 'undiciRead', 'aesGcm', 'aesGcmConcat'];
  const out = {} as Record<FloorName, number>;
  for (const n of names) {
    const xs: number[] = [];
    for (let r = 0; r < REPS; r++) xs.push(await floor(n, pem));
    out[n] = median(xs);
    log(`floor ${n}: ${out[n].toFixed(2)} s/GiB`);
  }
  return out;
}

async function main(): Promise<void> {
  if (args.floor) return floorChild(args.floor as FloorName);
  log(`CPU per GiB, ${SIZE / MiB} MiB per transfer, ${REPS} rep(s), median`);
  const result: Record<string, unknown> = { sizeMiB: SIZE / MiB, reps: REPS, unit: 'CPU s/GiB' };
  if (args.only !== 'floor') Object.assign(result, { proxy: round(await proxyRuns()) });
  if (args.only !== 'proxy') {
    const f = await floors();
    const getFloor = f.tcpRead + f.tlsWrite + f.aesGcm;
    const putFloor = f.tlsRead + f.tcpWrite + f.aesGcm;
    Object.assign(result, {
      floor: round({
        ...f,
        ssecGet: getFloor,
        ssecPut: putFloor,
        passGet: f.tcpRead + f.tlsWrite,
        passPut: f.tlsRead + f.tcpWrite,
      }),
    });
    if (result.proxy) {
      const p = result.proxy as Record<string, number>;
      const fl = result.floor as Record<string, number>;
      result.ratio = round(Object.fromEntries(['ssecPut', 'ssecGet', 'passPut', 'passGet'].filter((k) => p[k] !== undefined).map((k) => [k, p[k]! / fl[k]!])));
    }
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function round(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 100) / 100]));
}

await main();
