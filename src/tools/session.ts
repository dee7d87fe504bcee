/**
 * What every tool shares: the configuration (the proxy's own: --config and SSEC_PROXY_*), the upstream store
 * reached straight with the upstream credentials (no proxy running), the context objects/ expects, and keys
 * read from files. Keys never come from the command line and are never printed.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, type Config } from '../config.ts';
import type { RequestContext } from '../context.ts';
import { ObjectInfoCache } from '../objects/info-cache.ts';
import { S3Error } from '../s3/errors.ts';
import type { S3Request } from '../s3/operation.ts';
import type { CustomerKey } from '../sse-c/customer-key.ts';
import { Upstream } from '../upstream.ts';

/** A mistake in the command line or configuration: the tool stops before touching anything (exit 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface Session {
  readonly config: Config;
  readonly upstream: Upstream;
  /** The context objects/ reads and writes with: the upstream identity, no client request behind it. */
  readonly ctx: RequestContext;
  close(): Promise<void>;
}

/** The configured upstream (the embedded development store is not one: its data lives in the proxy's state). */
export function openSession(configPath: string | undefined, env: NodeJS.ProcessEnv = process.env): Session {
  let config: Config;
  try {
    config = loadConfig({ configPath, env });
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
  const up = config.upstream;
  if (!up) {
    throw new UsageError(
      'no upstream store is configured: the tools talk to it directly. Set SSEC_PROXY_UPSTREAM_URL, SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID and SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY (or "upstream" in --config).',
    );
  }
  const upstream = new Upstream(up.url, up.region, config.upstreamCa ? { ca: config.upstreamCa } : {});
  // The tools bound their own concurrency (--concurrency): the proxy's upload slots are not theirs to count.
  const toolConfig: Config = { ...config, maxConcurrentUploads: Number.MAX_SAFE_INTEGER };
  const ctx: RequestContext = {
    // No client request: no Origin to forward, no answer to write (upstreamRequest reads only these).
    req: { headers: {} } as IncomingMessage,
    res: { headersSent: true } as ServerResponse,
    s3: { op: 'ListObjectsV2', bucket: '', rawPath: '/', pathStyleRawPath: '/', query: [] } as S3Request,
    identity: { accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey },
    payloadHash: 'UNSIGNED-PAYLOAD',
    auth: undefined,
    upstream,
    config: toolConfig,
    requestId: 'tool',
    objects: new ObjectInfoCache(),
    passthrough: () => Promise.reject(new Error('the tools forward nothing')),
    stats: { bytesIn: 0, bytesOut: 0, upstreamRequests: 0, upstreamBytesIn: 0 },
  };
  return { config: toolConfig, upstream, ctx, close: () => upstream.close() };
}

/**
 * An SSE-C key from a file: the raw 32 bytes (as aws-cli's `fileb://`) or their base64 (as `keygen` prints
 * it). The message never shows the file's content.
 */
export function readKeyFile(path: string, what = '--sse-c-key-file'): CustomerKey {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new UsageError(`${what}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let key: Buffer | undefined;
  if (bytes.length === 32) key = Buffer.from(bytes);
  else {
    const text = bytes.toString('latin1').trim();
    if (/^[A-Za-z0-9+/]{43}=$/.test(text)) key = Buffer.from(text, 'base64');
  }
  bytes.fill(0);
  if (key?.length !== 32) throw new UsageError(`${what}: ${path} must hold a 256-bit key: 32 raw bytes or their base64 (44 characters)`);
  return { key, keyMd5: createHash('md5').update(key).digest('base64') };
}

/** A failure as one line for the operator: S3 errors by code, the rest by message. */
export function describeError(e: unknown): string {
  if (e instanceof S3Error) return `${e.code}: ${e.message}`;
  if (e instanceof Error) return (e as NodeJS.ErrnoException).code ? `${(e as NodeJS.ErrnoException).code}: ${e.message}` : e.message;
  return String(e);
}
