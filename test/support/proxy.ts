/**
 * Runs the real proxy in-process on port 0 over a real upstream, with a test CA that clients trust.
 * Also a raw requester for what SDKs won't send (malformed headers, wrong keys, cut bodies).
 */
import { createHash, randomBytes } from 'node:crypto';
import https from 'node:https';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { SignatureV4 } from '@smithy/signature-v4';
import { Hash } from '@smithy/hash-node';
import type { Metrics } from '../../src/admin.ts';
import { loadConfig } from '../../src/config.ts';
import { startProxy, type RunningProxy } from '../../src/server.ts';
import { ensureDevCertificate } from '../../src/tls/dev-cert.ts';
import { ensureRgw } from './rgw.ts';
import { Upstream } from '../../src/upstream.ts';

export interface UpstreamInfo {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export interface TestProxy {
  endpoint: string;
  httpEndpoint: string | undefined;
  caPath: string;
  caPem: string;
  proxy: RunningProxy;
  logs: Array<Record<string, unknown>>;
  /** An SDK client pointed at the proxy, trusting the test CA. */
  client(overrides?: Partial<{ accessKeyId: string; secretAccessKey: string; requestChecksumCalculation: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED' }>): S3Client;
  close(): Promise<void>;
}

/** The test run's Ceph RGW (started by scripts/test.sh, or here on first use). */
export async function rgwUpstream(): Promise<UpstreamInfo> {
  const rgw = await ensureRgw();
  return { endpoint: rgw.endpoint, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey, region: rgw.region };
}

let caDir: string | undefined;

export async function startTestProxy(up: UpstreamInfo, env: Record<string, string> = {}, opts: { metrics?: Metrics } = {}): Promise<TestProxy> {
  caDir ??= mkdtempSync(join(tmpdir(), 'ssec-test-ca-'));
  const domain = env.SSEC_PROXY_VIRTUAL_HOST_DOMAIN;
  const cert = await ensureDevCertificate(caDir, domain ? [domain, `*.${domain}`] : []);
  const config = loadConfig({
    env: {
      SSEC_PROXY_LISTEN: '127.0.0.1:0',
      SSEC_PROXY_UPSTREAM_URL: up.endpoint,
      SSEC_PROXY_UPSTREAM_REGION: up.region,
      SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: up.accessKeyId,
      SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: up.secretAccessKey,
      SSEC_PROXY_STATE_DIR: caDir,
      ...env,
    },
  });
  const upstream = new Upstream(up.endpoint, up.region, opts.metrics ? { observer: opts.metrics.upstreamObserver } : {});
  const logs: Array<Record<string, unknown>> = [];
  const proxy = await startProxy({
    config,
    upstream,
    tls: { cert: cert.certPem, key: cert.keyPem },
    log: (l) => logs.push(l),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  });
  const endpoint = `https://127.0.0.1:${proxy.httpsPort}`;
  const clients: S3Client[] = [];
  return {
    endpoint,
    httpEndpoint: proxy.httpPort ? `http://127.0.0.1:${proxy.httpPort}` : undefined,
    caPath: cert.caPath,
    caPem: cert.caPem,
    proxy,
    logs,
    client(overrides = {}) {
      const c = new S3Client({
        endpoint,
        region: up.region,
        forcePathStyle: true,
        credentials: {
          accessKeyId: overrides.accessKeyId ?? up.accessKeyId,
          secretAccessKey: overrides.secretAccessKey ?? up.secretAccessKey,
        },
        requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: cert.caPem, keepAlive: true }) }),
        ...(overrides.requestChecksumCalculation ? { requestChecksumCalculation: overrides.requestChecksumCalculation } : {}),
      });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.destroy();
      await proxy.close();
      await upstream.close();
    },
  };
}

/** An S3 client straight to the upstream (to inspect bytes at rest). */
export function directClient(up: UpstreamInfo): S3Client {
  return new S3Client({
    endpoint: up.endpoint,
    region: up.region,
    forcePathStyle: true,
    credentials: { accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey },
  });
}

export interface SseKey {
  raw: Buffer;
  b64: string;
  md5: string;
}

/** A SigV4 signer for S3 with the test upstream's credentials (another secret for negative tests). */
export function clientSigner(up: Pick<UpstreamInfo, 'accessKeyId' | 'secretAccessKey' | 'region'>, opts: { secret?: string; applyChecksum?: boolean } = {}): SignatureV4 {
  return new SignatureV4({
    credentials: { accessKeyId: up.accessKeyId, secretAccessKey: opts.secret ?? up.secretAccessKey },
    region: up.region,
    service: 's3',
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
    ...(opts.applyChecksum === undefined ? {} : { applyChecksum: opts.applyChecksum }),
  });
}

/** All bytes of an SDK response body. */
export async function bodyBytes(body: unknown): Promise<Buffer> {
  return Buffer.from(await (body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

/** An object's bytes as the store keeps them, read past the proxy with the upstream's own key pair. */
export async function storedBytes(up: UpstreamInfo, Bucket: string, Key: string): Promise<Buffer> {
  const direct = new S3Client({
    endpoint: up.endpoint,
    region: up.region,
    forcePathStyle: true,
    credentials: { accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey },
  });
  try {
    return await bodyBytes((await direct.send(new GetObjectCommand({ Bucket, Key }))).Body);
  } finally {
    direct.destroy();
  }
}

export function newKey(): SseKey {
  const raw = randomBytes(32);
  return { raw, b64: raw.toString('base64'), md5: createHash('md5').update(raw).digest('base64') };
}

/** The SDK's SSE-C parameters for a key. */
export function sse(k: SseKey) {
  return { SSECustomerAlgorithm: 'AES256', SSECustomerKey: k.b64, SSECustomerKeyMD5: k.md5 };
}

/** The SDK's SSE-C parameters for a copy source's key. */
export function copySourceSse(k: SseKey) {
  return { CopySourceSSECustomerAlgorithm: 'AES256', CopySourceSSECustomerKey: k.b64, CopySourceSSECustomerKeyMD5: k.md5 };
}

export function ssecHeaders(k: SseKey, prefix = 'x-amz-server-side-encryption-customer-'): Record<string, string> {
  return { [prefix + 'algorithm']: 'AES256', [prefix + 'key']: k.b64, [prefix + 'key-md5']: k.md5 };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * A signed request exactly as given (SigV4 over the headers passed; the payload is UNSIGNED-PAYLOAD unless
 * `payloadHash` says otherwise). `sign: false` sends it unsigned.
 */
export async function rawRequest(
  t: { endpoint: string; caPem: string },
  up: Pick<UpstreamInfo, 'accessKeyId' | 'secretAccessKey' | 'region'>,
  r: {
    method: string;
    path: string;
    query?: Record<string, string>;
    headers?: Record<string, string>;
    body?: Buffer | string;
    sign?: boolean;
    payloadHash?: string;
    signingDate?: Date;
    /** Send only this many bytes of the body and then cut the connection. */
    cutAfter?: number;
  },
): Promise<RawResponse> {
  const url = new URL(t.endpoint);
  const body = r.body === undefined ? undefined : Buffer.from(r.body);
  let headers: Record<string, string> = {
    host: url.host,
    ...(body !== undefined ? { 'content-length': String(body.length) } : {}),
    ...r.headers,
  };
  if (r.sign !== false) {
    headers['x-amz-content-sha256'] ??= r.payloadHash ?? 'UNSIGNED-PAYLOAD';
    const signer = clientSigner(up, { applyChecksum: false });
    const signed = await signer.sign(
      { method: r.method, protocol: 'https:', hostname: url.hostname, port: Number(url.port), path: r.path, query: r.query ?? {}, headers },
      r.signingDate ? { signingDate: r.signingDate } : {},
    );
    headers = signed.headers as Record<string, string>;
  }
  const qs = new URLSearchParams(r.query ?? {}).toString();
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: url.hostname,
        port: url.port,
        method: r.method,
        path: r.path + (qs ? '?' + qs.replace(/\+/g, '%20') : ''),
        headers,
        ca: t.caPem,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body !== undefined && r.cutAfter !== undefined) {
      req.write(body.subarray(0, r.cutAfter), () => setTimeout(() => req.destroy(new Error('cut by test')), 200));
      return;
    }
    req.end(body);
  });
}

/**
 * A signed (or, `sign: false`, anonymous) SSE-C PUT of `total` bytes to `path` through the proxy at `endpoint`, opened but with no body
 * written yet: tests write part of it and stall, cut it, or kill the proxy under it. Errors are the test's to
 * observe (`req.on('error')`); none is thrown.
 */
export async function openSsecPut(
  t: { endpoint: string; caPem: string },
  up: Pick<UpstreamInfo, 'accessKeyId' | 'secretAccessKey' | 'region'>,
  path: string,
  key: SseKey,
  total: number,
  opts: { sign?: boolean } = {},
): Promise<import('node:http').ClientRequest> {
  const url = new URL(t.endpoint);
  const headers: Record<string, string> = { host: url.host, 'content-length': String(total), 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...ssecHeaders(key) };
  const signed =
    opts.sign === false
      ? { headers }
      : await clientSigner(up).sign({ method: 'PUT', protocol: 'https:', hostname: url.hostname, port: Number(url.port), path, query: {}, headers });
  const req = https.request({ host: url.hostname, port: url.port, method: 'PUT', path, headers: signed.headers, ca: t.caPem, agent: false });
  req.on('error', () => {});
  return req;
}

/** `<Code>` of an S3 XML error body. */
export function errorCode(body: Buffer | string): string | undefined {
  return /<Code>([^<]+)<\/Code>/.exec(body.toString())?.[1];
}

export function errorMessage(body: Buffer | string): string | undefined {
  return /<Message>([^<]+)<\/Message>/.exec(body.toString())?.[1];
}

/**
 * The access-log line of the first `op` request logged after index `since`. The line is written when the
 * proxy's side of the exchange ends, which can be just after the client has read the whole answer.
 */
export async function logLine(t: TestProxy, since: number, op: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const line = t.logs.slice(since).find((l) => l.op === op);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no ${op} access-log line`);
}
