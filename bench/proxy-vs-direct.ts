/**
 * `npm run bench` (full runs, after bench/run.ts): PUT and GET of a large SSE-C object through the proxy, and the
 * same object size directly to the same RGW, in one run; then replicas, key rotation, crowds and hostile clients.
 * Prints throughput of each, their ratio, the proxy's CPU seconds per GiB and its peak RSS. The proxy runs as its
 * own process the way the bin runs it (dist/ from `npm run build`, else tsx), so its CPU and memory are its own.
 *
 * Env: RGW_ENDPOINT, RGW_ACCESS_KEY_ID, RGW_SECRET_ACCESS_KEY (set by scripts/bench.sh), BENCH_SIZE_MIB (1024).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent, request } from 'undici';
import { createUpstreamSigner } from '../src/sigv4/sign.ts';
import { ensureDevCertificate } from '../src/tls/dev-cert.ts';
import { freePort } from '../test/support/net.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const MiB = 1024 * 1024;
const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 1024) * MiB;
const endpoint = process.env.RGW_ENDPOINT ?? 'http://127.0.0.1:7480';
const accessKeyId = process.env.RGW_ACCESS_KEY_ID ?? 'PROXYTESTACCESSKEY01';
const secretAccessKey = process.env.RGW_SECRET_ACCESS_KEY ?? 'proxytestsecretkey000000000000000000000000';
const region = 'us-east-1';

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

function procStat(pid: number): { cpuSeconds: number; peakRssMiB: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / 100, peakRssMiB: kb('VmHWM') / 1024, rssMiB: kb('VmRSS') / 1024 };
}

interface Target {
  name: string;
  origin: string;
  agent: Agent;
  headers: Record<string, string>;
}

const signer = createUpstreamSigner({ accessKeyId, secretAccessKey, region });

async function send(
  t: Target,
  method: 'PUT' | 'GET' | 'HEAD' | 'POST' | 'DELETE',
  path: string,
  extra: Record<string, string>,
  payload?: Readable,
  query: Record<string, string> = {},
) {
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

async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, value };
}

async function putGet(t: Target, bucket: string, key: string, pid?: number) {
  const cpu0 = pid ? procStat(pid).cpuSeconds : 0;
  const put = await timed(async () => {
    const res = await send(t, 'PUT', `/${bucket}/${key}`, { 'content-length': String(SIZE) }, body(SIZE));
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`${t.name} PUT ${res.statusCode} ${text}`);
  });
  const cpu1 = pid ? procStat(pid).cpuSeconds : 0;
  const get = await timed(async () => {
    const res = await send(t, 'GET', `/${bucket}/${key}`, {});
    if (res.statusCode !== 200) throw new Error(`${t.name} GET ${res.statusCode} ${await res.body.text()}`);
    let n = 0;
    await pipeline(
      res.body,
      new Writable({
        write(c: Buffer, _e, cb) {
          n += c.length;
          cb();
        },
      }),
    );
    if (n !== SIZE) throw new Error(`${t.name} GET returned ${n} bytes`);
  });
  const cpu2 = pid ? procStat(pid).cpuSeconds : 0;
  const gib = SIZE / 1024 ** 3;
  return {
    putMBs: SIZE / MiB / put.seconds,
    getMBs: SIZE / MiB / get.seconds,
    putCpuPerGiB: (cpu1 - cpu0) / gib,
    getCpuPerGiB: (cpu2 - cpu1) / gib,
  };
}

const PART = 64 * MiB;

/** A multipart upload of SIZE bytes in 64 MiB parts, four at a time, as SDK transfer managers do. */
async function multipartPut(t: Target, bucket: string, key: string): Promise<number> {
  const r = await timed(async () => {
    const created = await send(t, 'POST', `/${bucket}/${key}`, {}, undefined, { uploads: '' });
    const xml = await created.body.text();
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(xml)?.[1];
    if (created.statusCode !== 200 || !uploadId) throw new Error(`${t.name} create ${created.statusCode} ${xml}`);
    const count = Math.ceil(SIZE / PART);
    const etags: string[] = new Array(count);
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const i = next++;
        const n = Math.min(PART, SIZE - i * PART);
        const res = await send(t, 'PUT', `/${bucket}/${key}`, { 'content-length': String(n) }, body(n), {
          partNumber: String(i + 1),
          uploadId,
        });
        await res.body.text();
        if (res.statusCode !== 200) throw new Error(`${t.name} part ${i + 1}: ${res.statusCode}`);
        etags[i] = String(res.headers['etag']);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    const done = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
    const completed = await send(t, 'POST', `/${bucket}/${key}`, { 'content-length': String(Buffer.byteLength(done)) }, Readable.from([done]), { uploadId });
    const text = await completed.body.text();
    if (completed.statusCode !== 200 || text.includes('<Error>')) throw new Error(`${t.name} complete ${text}`);
  });
  return SIZE / MiB / r.seconds;
}

/** The real CLI as its own process, over the bench RGW; its JSON access log is collected. */
async function startProxy(dir: string) {
  const port = await freePort();
  const nodeArgs = (process.env.BENCH_PROXY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proxy = spawn(process.execPath, [...nodeArgs, join(ROOT, 'bin/s3-ssec-proxy.js')], {
    env: {
      ...process.env,
      SSEC_PROXY_LISTEN: `127.0.0.1:${port}`,
      SSEC_PROXY_STATE_DIR: dir,
      SSEC_PROXY_UPSTREAM_URL: endpoint,
      SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: accessKeyId,
      SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: secretAccessKey,
      SSEC_PROXY_UPSTREAM_REGION: region,
      SSEC_PROXY_WORKERS: process.env.BENCH_PVD_WORKERS ?? '1', // the CPU and RSS read from /proc are this process's
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The proxy's access log (JSON lines): upstream requests and bytes behind each client request.
  const accessLog: Array<Record<string, unknown>> = [];
  let pending = '';
  proxy.stdout!.on('data', (c: Buffer) => {
    pending += c.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const l of lines) if (l.startsWith('{')) accessLog.push(JSON.parse(l) as Record<string, unknown>);
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    proxy.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      if (err.includes('listening on')) resolve();
    });
    proxy.on('exit', (code) => reject(new Error(`proxy exited ${code}: ${err}`)));
  });
  return { proxy, port, accessLog };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'ssec-bench-'));
  const cert = await ensureDevCertificate(dir);
  const { proxy, port, accessLog } = await startProxy(dir);
  const key = randomBytes(32);
  const ssec = {
    'x-amz-server-side-encryption-customer-algorithm': 'AES256',
    'x-amz-server-side-encryption-customer-key': key.toString('base64'),
    'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(key).digest('base64'),
  };
  const direct: Target = { name: 'direct', origin: endpoint, agent: new Agent(), headers: {} };
  const viaProxy: Target = {
    name: 'proxy',
    origin: `https://127.0.0.1:${port}`,
    agent: new Agent({ connect: { ca: cert.caPem } }),
    headers: ssec,
  };
  const bucket = `bench-${Date.now().toString(36)}`;
  const mk = await send(direct, 'PUT', `/${bucket}`, {});
  await mk.body.text();

  try {
    const d = await putGet(direct, bucket, 'direct.bin');
    const before = procStat(proxy.pid!);
    const p = await putGet(viaProxy, bucket, 'proxy.bin', proxy.pid!);
    const after = procStat(proxy.pid!);
    // Key rotation of the SSE-C object by copy-to-self, against a plain upstream copy of the same size.
    const key2 = randomBytes(32);
    const rotate = await timed(async () => {
      const n = accessLog.length;
      const res = await send({ ...viaProxy, headers: {} }, 'PUT', `/${bucket}/proxy.bin`, {
        'x-amz-copy-source': `/${bucket}/proxy.bin`,
        'x-amz-copy-source-server-side-encryption-customer-algorithm': 'AES256',
        'x-amz-copy-source-server-side-encryption-customer-key': key.toString('base64'),
        'x-amz-copy-source-server-side-encryption-customer-key-md5': createHash('md5').update(key).digest('base64'),
        'x-amz-server-side-encryption-customer-algorithm': 'AES256',
        'x-amz-server-side-encryption-customer-key': key2.toString('base64'),
        'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(key2).digest('base64'),
      });
      const text = await res.body.text();
      if (res.statusCode !== 200 || text.includes('<Error>')) throw new Error(`rotation: ${res.statusCode} ${text}`);
      for (let i = 0; i < 100 && !accessLog.slice(n).some((l) => l.op === 'CopyObject'); i++) await new Promise((r) => setTimeout(r, 10));
      return accessLog.slice(n).find((l) => l.op === 'CopyObject')!;
    });
    const directCopy = await timed(async () => {
      const res = await send(direct, 'PUT', `/${bucket}/direct-copy.bin`, { 'x-amz-copy-source': `/${bucket}/direct.bin` });
      const text = await res.body.text();
      if (res.statusCode !== 200 || text.includes('<Error>')) throw new Error(`direct copy: ${res.statusCode} ${text}`);
    });
    // The store is in memory: free what the next phases do not need.
    for (const name of ['direct.bin', 'direct-copy.bin', 'proxy.bin']) await (await send(direct, 'DELETE', `/${bucket}/${name}`, {})).body.text();
    // The same through the proxy without SSE-C (pass-through): what TLS and streaming alone cost.
    const pt = await putGet({ ...viaProxy, name: 'pass-through', headers: {} }, bucket, 'plain.bin', proxy.pid!);
    await (await send(direct, 'DELETE', `/${bucket}/plain.bin`, {})).body.text();
    const mpDirect = await multipartPut(direct, bucket, 'mp-direct.bin');
    await (await send(direct, 'DELETE', `/${bucket}/mp-direct.bin`, {})).body.text();
    const mpProxy = await multipartPut(viaProxy, bucket, 'mp-proxy.bin');
    // One byte from the middle of the multipart object: on the replica that wrote it (it learned the part table
    // at Complete), and on a second replica that has never seen it (first read, then again).
    const oneByte = async (via: Target, log: typeof accessLog) => {
      const n = log.length;
      const res = await send(via, 'GET', `/${bucket}/mp-proxy.bin`, { range: `bytes=${SIZE / 2}-${SIZE / 2}` });
      const got = Buffer.from(await res.body.arrayBuffer());
      if (res.statusCode !== 206 || got.length !== 1) throw new Error(`1-byte GET: ${res.statusCode} ${got.length}`);
      for (let i = 0; i < 100 && !log.slice(n).some((l) => l.op === 'GetObject'); i++) await new Promise((r) => setTimeout(r, 10));
      const line = log.slice(n).find((l) => l.op === 'GetObject')!;
      return `${line.upstreamRequests} upstream requests, ${line.upstreamBytesIn} bytes read`;
    };
    const writer = await oneByte(viaProxy, accessLog);
    const second = await startProxy(dir);
    const other: Target = { ...viaProxy, origin: `https://127.0.0.1:${second.port}`, agent: new Agent({ connect: { ca: cert.caPem } }) };
    let cold: string;
    let warm: string;
    try {
      cold = await oneByte(other, second.accessLog);
      warm = await oneByte(other, second.accessLog);
    } finally {
      second.proxy.kill('SIGTERM');
    }
    // 500 connections at once on a fresh proxy process (its peak RSS is this phase's alone): 250 SSE-C PUTs
    // of 2 MiB and 250 SSE-C GETs of a 2 MiB object, each on its own connection.
    const many = await startProxy(dir);
    let crowd: string;
    try {
      const via: Target = { ...viaProxy, origin: `https://127.0.0.1:${many.port}`, agent: new Agent({ connect: { ca: cert.caPem }, connections: 600 }) };
      const small = 2 * MiB;
      const seed = await send(via, 'PUT', `/${bucket}/crowd-seed.bin`, { 'content-length': String(small) }, body(small));
      await seed.body.text();
      const idle = procStat(many.proxy.pid!).rssMiB;
      let peak = 0;
      const sampler = setInterval(() => (peak = Math.max(peak, procStat(many.proxy.pid!).rssMiB)), 50);
      const t0 = process.hrtime.bigint();
      const results = await Promise.all(
        Array.from({ length: 500 }, async (_, i) => {
          if (i % 2 === 0) {
            const res = await send(via, 'PUT', `/${bucket}/crowd-${i}.bin`, { 'content-length': String(small) }, body(small));
            await res.body.text();
            return res.statusCode;
          }
          const res = await send(via, 'GET', `/${bucket}/crowd-seed.bin`, {});
          await res.body.dump({ limit: Infinity });
          return res.statusCode;
        }),
      );
      clearInterval(sampler);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const hwm = procStat(many.proxy.pid!).peakRssMiB;
      const ok = results.filter((s) => s === 200).length;
      const slowDown = results.filter((s) => s === 503).length;
      crowd = `peak RSS ${Math.max(peak, hwm).toFixed(0)} MiB (idle ${idle.toFixed(0)} MiB; manifests' limit 512 MiB); ${ok} answered 200, ${slowDown} SlowDown (upload cap 128), in ${seconds.toFixed(1)} s`;
      for (let i = 0; i < 500; i += 2) await (await send(direct, 'DELETE', `/${bucket}/crowd-${i}.bin`, {})).body.text();
    } finally {
      many.proxy.kill('SIGTERM');
    }
    // Hostile clients, on a fresh proxy process: (1) a 200 MiB PostObject form signed with an unknown key — the
    // RSS it costs; (2) 200 SSE-C uploads that send one byte every 2 s — how long a normal GET then takes.
    const hostile = await startProxy(dir);
    let unauthPost: string;
    let slowUploads: string;
    try {
      const port2 = hostile.port;
      const rss0 = procStat(hostile.proxy.pid!).rssMiB;
      let peak = rss0;
      const sampler = setInterval(() => (peak = Math.max(peak, procStat(hostile.proxy.pid!).rssMiB)), 20);
      const boundary = 'bench-boundary';
      const fields = { key: 'x', policy: 'e30=', 'x-amz-algorithm': 'AWS4-HMAC-SHA256', 'x-amz-credential': `AKUNKNOWN/20261205/${region}/s3/aws4_request`, 'x-amz-date': '20261205T000000Z', 'x-amz-signature': '0'.repeat(64) };
      let head = '';
      for (const [k, v] of Object.entries(fields)) head += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
      head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n`;
      const fileSize = 200 * MiB;
      const tail = `\r\n--${boundary}--\r\n`;
      const form = Readable.from((async function* () {
        yield Buffer.from(head);
        const block = Buffer.alloc(MiB);
        for (let i = 0; i < fileSize / MiB; i++) yield block;
        yield Buffer.from(tail);
      })());
      const postStatus = await request(`https://127.0.0.1:${port2}/${bucket}`, {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(Buffer.byteLength(head) + fileSize + Buffer.byteLength(tail)) },
        body: form,
        dispatcher: new Agent({ connect: { ca: cert.caPem } }),
      }).then(
        async (r) => {
          await r.body.dump();
          return String(r.statusCode);
        },
        (e: Error) => `cut (${e.message})`,
      );
      await new Promise((r) => setTimeout(r, 300));
      clearInterval(sampler);
      unauthPost = `answered ${postStatus}; proxy RSS +${(peak - rss0).toFixed(1)} MiB (from ${rss0.toFixed(0)} MiB)`;

      const via: Target = { ...viaProxy, origin: `https://127.0.0.1:${port2}`, agent: new Agent({ connect: { ca: cert.caPem }, connections: 300 }) };
      const seed = await send(via, 'PUT', `/${bucket}/slow-seed.bin`, { 'content-length': String(MiB) }, body(MiB));
      await seed.body.text();
      const stop = { done: false };
      const trickle = (n: number) =>
        new Readable({
          read() {
            if (stop.done) return this.destroy();
            setTimeout(() => this.push(Buffer.alloc(1)), n === 0 ? 0 : 2000);
          },
        });
      const slow = Array.from({ length: 200 }, (_, i) =>
        send(via, 'PUT', `/${bucket}/slow-${i}.bin`, { 'content-length': String(1_000_000) }, trickle(i)).then(
          (r) => r.body.dump(),
          () => undefined,
        ),
      );
      await new Promise((r) => setTimeout(r, 3000));
      const get = await timed(async () => {
        const r = await send(via, 'GET', `/${bucket}/slow-seed.bin`, {});
        await r.body.dump({ limit: Infinity });
        return r.statusCode;
      });
      stop.done = true;
      slowUploads = `a 1 MiB SSE-C GET answered ${get.value} in ${(get.seconds * 1000).toFixed(0)} ms`;
      hostile.proxy.kill('SIGKILL');
      await Promise.allSettled(slow);
    } finally {
      hostile.proxy.kill('SIGKILL');
    }
    const rows = [
      ['object size', `${SIZE / MiB} MiB`],
      ['PUT direct', `${d.putMBs.toFixed(0)} MiB/s`],
      ['PUT via proxy', `${p.putMBs.toFixed(0)} MiB/s`],
      ['PUT ratio', `${(p.putMBs / d.putMBs).toFixed(2)}x`],
      ['GET direct', `${d.getMBs.toFixed(0)} MiB/s`],
      ['GET via proxy', `${p.getMBs.toFixed(0)} MiB/s`],
      ['GET ratio', `${(p.getMBs / d.getMBs).toFixed(2)}x`],
      ['proxy CPU per GiB, PUT', `${p.putCpuPerGiB.toFixed(2)} s`],
      ['proxy CPU per GiB, GET', `${p.getCpuPerGiB.toFixed(2)} s`],
      ['pass-through PUT / GET', `${pt.putMBs.toFixed(0)} / ${pt.getMBs.toFixed(0)} MiB/s`],
      ['pass-through CPU per GiB, PUT / GET', `${pt.putCpuPerGiB.toFixed(2)} / ${pt.getCpuPerGiB.toFixed(2)} s`],
      ['multipart PUT (64 MiB parts x4) direct', `${mpDirect.toFixed(0)} MiB/s`],
      ['multipart PUT via proxy', `${mpProxy.toFixed(0)} MiB/s (${(mpProxy / mpDirect).toFixed(2)}x)`],
      ['1-byte GET of the multipart object, writing replica', writer],
      ['1-byte GET, another replica, cold', cold],
      ['1-byte GET, another replica, warm', warm],
      ['key rotation (copy-to-self) of the object, via proxy', `${rotate.seconds.toFixed(2)} s, body bytes through the proxy: ${Number(rotate.value.bytesIn) + Number(rotate.value.upstreamBytesIn) + Number(rotate.value.bytesOut)}`],
      ['plain upstream CopyObject of the same size, direct', `${directCopy.seconds.toFixed(2)} s`],
      ['proxy peak RSS', `${after.peakRssMiB.toFixed(0)} MiB (before: ${before.peakRssMiB.toFixed(0)} MiB)`],
      ['500 connections at once (250 PUT + 250 GET of 2 MiB, SSE-C), fresh proxy', crowd],
      ['a 200 MiB PostObject form with an unknown key, fresh proxy', unauthPost],
      ['while 200 SSE-C uploads trickle 1 byte every 2 s', slowUploads],
    ];
    for (const [k, v] of rows) console.log(`${k!.padEnd(52)} ${v}`);
  } catch (e) {
    for (const l of accessLog.filter((x) => x.level === 'warn').slice(-5)) console.error('proxy:', JSON.stringify(l));
    throw e;
  } finally {
    proxy.kill('SIGTERM');
    await direct.agent.close();
    await viaProxy.agent.close();
  }
}

await main();
