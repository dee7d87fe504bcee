/**
 * A cold listing of N small SSE-C objects (single PUTs of various sizes) in a bucket declared encrypted-only,
 * through a freshly started proxy vs directly (docs/MULTIPART.md, "Buckets declared encrypted-only"; target
 * ≤ 1.2× direct). Also the same listing through a process with no warm-up at all, and through a fresh proxy
 * without the declaration (a HEAD per object). Direct HTTPS too when RGW_TLS_ENDPOINT (and RGW_TLS_CA) are set.
 * The listed proxies run as deployed: the bin over dist/ (`npm run build`), a process of their own.
 *   RGW_ENDPOINT=… RGW_ACCESS_KEY_ID=… RGW_SECRET_ACCESS_KEY=… node --import tsx bench/listing.ts [count]
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { CreateBucketCommand, ListBucketsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startCli } from '../test/support/cli.ts';
import { newKey, sse, startTestProxy, type UpstreamInfo } from '../test/support/proxy.ts';

/** A fresh proxy process (the bin over dist/, as deployed; test/support/cli.ts) and a client of it. */
async function startBin(env: Record<string, string>): Promise<{ client: S3Client; close: () => Promise<void> }> {
  const cli = await startCli(up, { SSEC_PROXY_UPSTREAM_REGION: up.region, SSEC_PROXY_WORKERS: '1', SSEC_PROXY_LOG_LEVEL: 'warn', ...env });
  return { client: cli.client(), close: () => cli.stop() };
}

const count = Number(process.argv[2] ?? process.env.BENCH_LIST_COUNT ?? 10_000);
const up: UpstreamInfo = {
  endpoint: process.env.RGW_ENDPOINT ?? 'http://127.0.0.1:7480',
  accessKeyId: process.env.RGW_ACCESS_KEY_ID ?? process.env.AWS_ACCESS_KEY_ID ?? '',
  secretAccessKey: process.env.RGW_SECRET_ACCESS_KEY ?? process.env.AWS_SECRET_ACCESS_KEY ?? '',
  region: 'us-east-1',
};
const bucket = `enc-only-bench-${Date.now()}`;
const warmBucket = `${bucket}-warm`;
const declared = { SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS: JSON.stringify([bucket, warmBucket]) };
const key = newKey();

const direct = new S3Client({ endpoint: up.endpoint, region: up.region, forcePathStyle: true, credentials: up });
// The store over HTTPS too, when it has an endpoint for it (scripts/bench.sh starts one): the proxy's client leg is
// TLS, so this is the listing the client would get from the store with the same transport.
const tlsEndpoint = process.env.RGW_TLS_ENDPOINT;
const directTls = tlsEndpoint
  ? new S3Client({
      endpoint: tlsEndpoint,
      region: up.region,
      forcePathStyle: true,
      credentials: up,
      requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ keepAlive: true, ca: process.env.RGW_TLS_CA ? readFileSync(process.env.RGW_TLS_CA, 'utf8') : undefined }) }),
    })
  : undefined;

/** Lists the bucket page by page; each page's time (ms) goes to `pageTimes`. */
async function listAll(s3: S3Client, pageTimes: number[] = []): Promise<number> {
  let n = 0;
  let token: string | undefined;
  do {
    const t = performance.now();
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    pageTimes.push(performance.now() - t);
    n += page.KeyCount ?? 0;
    token = page.NextContinuationToken;
  } while (token);
  return n;
}

/** Machine CPU (every process) as [busy, total] ticks, from /proc/stat. */
function cpuTicks(): [number, number] {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return [total - idle, total];
}

/**
 * Waits (up to a minute) for the machine to be quiet after 11,000 writes: the store works on for a while
 * (index and log upkeep), and a listing measured meanwhile shares the cores with it, directly and through the
 * proxy alike, which only adds noise to the ratio.
 */
async function settle(): Promise<void> {
  const start = performance.now();
  let quiet = 0;
  while (quiet < 2 && performance.now() - start < 60_000) {
    const [b0, t0] = cpuTicks();
    await new Promise((r) => setTimeout(r, 1000));
    const [b1, t1] = cpuTicks();
    quiet = (b1 - b0) / Math.max(1, t1 - t0) < 0.15 ? quiet + 1 : 0;
  }
  console.log(`(waited ${((performance.now() - start) / 1000).toFixed(0)} s for the machine to settle after the writes)`);
}

async function timed(label: string, f: () => Promise<number>): Promise<number> {
  const t = performance.now();
  const n = await f();
  const ms = performance.now() - t;
  console.log(`${label.padEnd(44)} ${String(n).padStart(6)} objects  ${(ms / 1000).toFixed(2)} s`);
  return ms;
}

const writer = await startTestProxy(up, declared);
try {
  const s3 = writer.client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new CreateBucketCommand({ Bucket: warmBucket }));
  let w = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (w < 1000) {
        const i = w++;
        await s3.send(new PutObjectCommand({ Bucket: warmBucket, Key: `w/${i}`, Body: randomBytes(100), ...sse(key) }));
      }
    }),
  );
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < count) {
        const i = next++;
        const size = [0, 1, 100, 4095, 65535, 65536, 65537][i % 7]!;
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `o/${String(i).padStart(7, '0')}`, Body: randomBytes(size), ...sse(key) }));
      }
    }),
  );
} finally {
  await writer.close();
}
await settle();

// Every client (and proxy) first lists another bucket (1,000 objects) WARM_PAGES times: connections, TLS and compiled
// code are warm, as in a replica that has served other traffic (V8 has compiled the listing path fully only after
// some tens of pages: a proxy that has listed 10 pages still lists ~1.3× slower than one that has listed 30). What
// stays cold is what it knows of this bucket's objects, which is what a listing at scale is about. The same
// listing through a process with no warm-up at all is reported too.
const WARM_PAGES = Number(process.env.BENCH_LISTING_WARM_PAGES ?? 30);
const warm = async (s3: S3Client) => {
  await s3.send(new ListBucketsCommand({}));
  for (let i = 0; i < WARM_PAGES; i++) await s3.send(new ListObjectsV2Command({ Bucket: warmBucket }));
};
await warm(direct);
if (directTls) await warm(directTls);
// Rounds, each a direct listing (HTTP, and HTTPS where the store has it) and one through a proxy started afresh,
// reported as medians: a single 0.3 s listing
// on shared cores moves by a tenth of a second between runs.
const ROUNDS = Number(process.env.BENCH_LISTING_ROUNDS ?? 5);
const directs: number[] = [];
const directsTls: number[] = [];
const proxies: number[] = [];
const pages = { direct: [] as number[], directTls: [] as number[], proxy: [] as number[] };
for (let r = 1; r <= ROUNDS; r++) {
  directs.push(await timed(`direct (${r}/${ROUNDS})`, () => listAll(direct, pages.direct)));
  if (directTls) directsTls.push(await timed(`direct HTTPS (${r}/${ROUNDS})`, () => listAll(directTls, pages.directTls)));
  const cold = await startBin(declared);
  await warm(cold.client);
  proxies.push(await timed(`fresh proxy, bucket declared encrypted-only (${r}/${ROUNDS})`, () => listAll(cold.client, pages.proxy)).finally(() => cold.close()));
}
const first = await startBin(declared);
await timed('fresh process, no warm-up, bucket declared', () => listAll(first.client)).finally(() => first.close());
const plain = await startBin({});
await warm(plain.client);
await timed('fresh proxy, bucket not declared', () => listAll(plain.client)).finally(() => plain.close());
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1]!;
const seconds = (xs: number[]) => `${(median(xs) / 1000).toFixed(2)} s`;
const ms = (xs: number[]) => `${median(xs).toFixed(1)} ms`;
console.log(`medians of the listings: direct ${seconds(directs)}${directTls ? `, direct HTTPS ${seconds(directsTls)}` : ''}, fresh declared proxy ${seconds(proxies)}`);
console.log(`medians of their ${pages.proxy.length} pages: direct ${ms(pages.direct)}${directTls ? `, direct HTTPS ${ms(pages.directTls)}` : ''}, fresh declared proxy ${ms(pages.proxy)}`);
// The target is judged on page medians: a listing is its pages one after another, and a page's median is not moved
// by the one page in ten that the shared cores delay by 50 ms (the listings' own medians move by ±15 % between runs).
console.log(`declared / direct: ${(median(pages.proxy) / median(pages.direct)).toFixed(2)}× per page (target ≤ 1.2×), ${(median(proxies) / median(directs)).toFixed(2)}× per listing`);
if (directTls) {
  console.log(`declared / direct HTTPS: ${(median(pages.proxy) / median(pages.directTls)).toFixed(2)}× per page, ${(median(proxies) / median(directsTls)).toFixed(2)}× per listing (the proxy's client leg is HTTPS too)`);
}
directTls?.destroy();
direct.destroy();
