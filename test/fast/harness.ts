/**
 * Shared set-up of the fast tests: the real proxy (test/support/proxy.ts) in front of the in-memory S3 double
 * (test/support/s3-double.ts), and a way to see the upstream requests one client operation caused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  S3ServiceException,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Metrics } from '../../src/admin.ts';
import { sse, startTestProxy, type SseKey, type TestProxy } from '../support/proxy.ts';
import { describeRequests, startS3Double, type RecordedRequest, type S3Double } from '../support/s3-double.ts';

export interface Fast {
  double: S3Double;
  proxy: TestProxy;
  s3: S3Client;
  close(): Promise<void>;
}

/** A proxy over a new double; `chunkSizeLog2` (only settable in the config file) for new objects. */
export async function startFast(opts: { chunkSizeLog2?: number; buckets?: string[]; env?: Record<string, string>; metrics?: Metrics } = {}): Promise<Fast> {
  const double = await startS3Double();
  const env: Record<string, string> = { ...opts.env };
  if (opts.chunkSizeLog2 !== undefined) {
    const file = join(mkdtempSync(join(tmpdir(), 'ssec-fast-')), 'config.json');
    writeFileSync(file, JSON.stringify({ chunkSizeLog2: opts.chunkSizeLog2 }));
    env.SSEC_PROXY_CONFIG = file;
  }
  const proxy = await startTestProxy(double, env, opts.metrics ? { metrics: opts.metrics } : {});
  const s3 = proxy.client();
  for (const b of opts.buckets ?? []) await s3.send(new CreateBucketCommand({ Bucket: b }));
  return {
    double,
    proxy,
    s3,
    async close() {
      await proxy.close();
      await double.close();
    },
  };
}

/** An SSE-C multipart upload of `parts` (numbered from 1) to `bucket/name`, completed; returns the client's upload id. */
export async function uploadMultipart(s3: S3Client, bucket: string, name: string, parts: Buffer[], k: SseKey): Promise<string> {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: name, ...sse(k) }));
  const etags: Array<string | undefined> = [];
  for (const [i, Body] of parts.entries()) {
    etags.push((await s3.send(new UploadPartCommand({ Bucket: bucket, Key: name, UploadId, PartNumber: i + 1, Body, ...sse(k) }))).ETag);
  }
  const MultipartUpload = { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) };
  await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: name, UploadId, MultipartUpload, ...sse(k) }));
  return UploadId!;
}

/** Another proxy (a cold replica: nothing learned yet) over the same double. */
export async function anotherProxy(double: S3Double, env: Record<string, string> = {}): Promise<{ proxy: TestProxy; s3: S3Client }> {
  const proxy = await startTestProxy(double, env);
  return { proxy, s3: proxy.client() };
}

/**
 * Runs `op` and returns the upstream requests it caused, once every one has ended (a short pause first lets
 * work the proxy does after answering start).
 */
export async function upstreamOf(double: S3Double, op: () => Promise<unknown>): Promise<RecordedRequest[]> {
  await double.idle();
  double.resetRequests();
  await op();
  await new Promise((r) => setTimeout(r, 20));
  await double.idle();
  // The replica's bucket-policy reads (one per bucket every few seconds, policy/stored.ts) are not the operation's.
  return double.requests.filter((r) => !('policy' in r.query));
}

/** Every answer was written whole: no body the proxy asked for was cut off. */
export function assertNoBodyThrownAway(requests: RecordedRequest[]): void {
  for (const r of requests) {
    assert.ok(!r.aborted && r.bodyBytesOut === r.bodyBytesRequested, `a body was cut off:\n${describeRequests(requests)}`);
  }
}

/** The SDK's rejection of `p` has this S3 error code and HTTP status. */
export async function rejectsWith(p: Promise<unknown>, code: string, status: number): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof S3ServiceException, String(e));
    assert.equal(e.$metadata.httpStatusCode, status, `${e.name}: ${e.message}`);
    assert.equal(e.name, code);
    return true;
  });
}

/** Plaintext bytes with `marker` at the given offsets. */
export function withMarker(data: Buffer, marker: Buffer, offsets: number[]): Buffer {
  for (const o of offsets) marker.copy(data, o);
  return data;
}
