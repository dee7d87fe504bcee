/**
 * S3 helpers for tests: unique bucket names, and a raw S3 client that talks straight to the upstream
 * (bypassing the proxy) so a test can look at the bytes at rest.
 */
import { randomBytes } from 'node:crypto';

import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  AbortMultipartUploadCommand,
  ListObjectsV2Command,
  S3Client,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';

import { ensureRgw, type RgwEndpoint } from './rgw.ts';

export interface S3Target {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

let counter = 0;

/**
 * A fresh, valid bucket name: `prefix-<time>-<counter>-<random>`, lowercase, at most 63 characters.
 * The prefix is lowercased and anything outside [a-z0-9-] becomes '-'.
 */
export function uniqueBucket(prefix = 'test'): string {
  const clean = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 30);
  const suffix = `${Date.now().toString(36)}-${(counter++).toString(36)}-${randomBytes(3).toString('hex')}`;
  return `${clean === '' ? 'test' : clean}-${suffix}`.slice(0, 63);
}

/**
 * An S3 client pointed straight at `target` (path-style). Flexible checksums only when required:
 * RGW 16 refuses aws-chunked bodies with trailers, which the SDK would otherwise send for streams.
 */
export function rawS3Client(target: S3Target): S3Client {
  return new S3Client({
    endpoint: target.endpoint,
    region: target.region,
    forcePathStyle: true,
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
}

/** {@link rawS3Client} for the test RGW ({@link ensureRgw}); returns the endpoint details too. */
export async function rawUpstreamClient(): Promise<{ client: S3Client; rgw: RgwEndpoint }> {
  const rgw = await ensureRgw();
  return { client: rawS3Client(rgw), rgw };
}

/** Creates a bucket named {@link uniqueBucket}(prefix) and returns its name. */
export async function createUniqueBucket(client: S3Client, prefix = 'test'): Promise<string> {
  const Bucket = uniqueBucket(prefix);
  await client.send(new CreateBucketCommand({ Bucket }));
  return Bucket;
}

/** The object's stored bytes and headers as the upstream has them (ciphertext, when written via the proxy). */
export async function readRawObject(
  client: S3Client,
  Bucket: string,
  Key: string,
): Promise<{ body: Buffer; head: HeadObjectCommandOutput }> {
  const head = await client.send(new HeadObjectCommand({ Bucket, Key }));
  const got = await client.send(new GetObjectCommand({ Bucket, Key }));
  const bytes = (await got.Body?.transformToByteArray()) ?? new Uint8Array();
  return { body: Buffer.from(bytes), head };
}

/** Test teardown: aborts uploads, deletes every object, then the bucket. Ignores a missing bucket. */
export async function deleteBucketRecursive(client: S3Client, Bucket: string): Promise<void> {
  try {
    for (;;) {
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket }));
      for (const u of uploads.Uploads ?? []) {
        await client.send(new AbortMultipartUploadCommand({ Bucket, Key: u.Key, UploadId: u.UploadId }));
      }
      if (uploads.IsTruncated !== true) break;
    }
    let ContinuationToken: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket, ContinuationToken }));
      const Objects = (page.Contents ?? []).map((o) => ({ Key: o.Key }));
      if (Objects.length > 0) await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects, Quiet: true } }));
      ContinuationToken = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (ContinuationToken !== undefined);
    await client.send(new DeleteBucketCommand({ Bucket }));
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchBucket') return;
    throw err;
  }
}
