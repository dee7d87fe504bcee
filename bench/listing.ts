/**
 * A cold listing of N small SSE-C objects (single PUTs of various sizes) in a bucket declared encrypted-only,
 * through a freshly started proxy vs directly (docs/MULTIPART.md, "Buckets declared encrypted-only"; target
 * ≤ 1.2× direct). Also the same listing through a fresh proxy without the declaration (a HEAD per object).
 * The listed proxies run as deployed: the bin over dist/ (`npm run build`), a process of their own.
 *   RGW_ENDPOINT=… RGW_ACCESS_KEY_ID=… RGW_SECRET_ACCESS_KEY=… node --import tsx bench/listing.ts [count]
 */
import { randomBytes } from 'node:crypto';
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

async function listAll(s3: S3Client): Promise<number> {
  let n = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    n += page.KeyCount ?? 0;
    token = page.NextContinuationToken;
  } while (token);
  return n;
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

// Every client (and proxy) first lists another bucket (1,000 objects, twice): connections, TLS and compiled code
// are warm, as in a replica that has served other traffic; what stays cold is what it knows of this bucket's objects, which is
// what a listing at scale is about.
const warm = async (s3: S3Client) => {
  await s3.send(new ListBucketsCommand({}));
  // A full page, twice: the listing code compiled as in a replica that has listed before.
  for (let i = 0; i < 2; i++) await s3.send(new ListObjectsV2Command({ Bucket: warmBucket }));
};
await warm(direct);
// Rounds, each a direct listing and one through a proxy started afresh, reported as medians: a single 0.5 s listing
// on shared cores moves by a tenth of a second between runs.
const ROUNDS = Number(process.env.BENCH_LISTING_ROUNDS ?? 3);
const directs: number[] = [];
const proxies: number[] = [];
for (let r = 1; r <= ROUNDS; r++) {
  directs.push(await timed(`direct (${r}/${ROUNDS})`, () => listAll(direct)));
  const cold = await startBin(declared);
  await warm(cold.client);
  proxies.push(await timed(`fresh proxy, bucket declared encrypted-only (${r}/${ROUNDS})`, () => listAll(cold.client)).finally(() => cold.close()));
}
const plain = await startBin({});
await warm(plain.client);
await timed('fresh proxy, bucket not declared', () => listAll(plain.client)).finally(() => plain.close());
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1]!;
console.log(`medians: direct ${(median(directs) / 1000).toFixed(2)} s, fresh declared proxy ${(median(proxies) / 1000).toFixed(2)} s`);
console.log(`declared / direct: ${(median(proxies) / median(directs)).toFixed(2)}× (target ≤ 1.2×; medians of ${ROUNDS})`);
