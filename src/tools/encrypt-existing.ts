/**
 * `encrypt-existing`: encrypts a bucket's plaintext objects in place, each streamed from the store through the
 * format and back (the proxy's own writer, objects/write.ts), under an SSE-C key from a file or an SSE-S3/KMS
 * key from the configured KMS. Objects already encrypted are left alone, so a re-run (with or without
 * --state) only does what is left. Content-type, other object headers, user metadata and tags are kept. Each
 * replacement is conditional on the ETag read (replace.ts): an object a client rewrote meanwhile is left as
 * the client wrote it. In a versioned bucket the encrypted object is a new version; the plaintext versions
 * stay until deleted. Objects above --part-size are written as multipart uploads (one part at a time).
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { RequestContext } from '../context.ts';
import { kmsOf } from '../kms/registry.ts';
import { newManagedKey } from '../objects/keys.ts';
import { readPlaintext } from '../objects/read.ts';
import type { StoredObject } from '../objects/stored.ts';
import { sealingStages, streamUpload } from '../objects/write.ts';
import { S3Error } from '../s3/errors.ts';
import { ENVELOPE_META, LAYOUT_META } from '../s3/headers.ts';
import { objectPath } from '../s3/operation.ts';
import { buildCompleteMultipartUpload, hasRoot, textAt } from '../s3/xml.ts';
import type { CustomerKey } from '../sse-c/customer-key.ts';
import { scoped, wipe } from '../sse-c/data-key.ts';
import { sealEnvelope } from '../sse-c/envelope.ts';
import type { ManagedKey } from '../sse-kms/managed.ts';
import { readText } from '../upstream.ts';
import { upstreamRequest } from '../context.ts';
import { modeOf } from './modes.ts';
import { assertUnchanged, beforeWrite, conditionally, ifMatch, keptHeaders, ObjectChanged, pauseBeforeWrite, refusal, taggingOf } from './replace.ts';
import { BULK_OPTIONS, bulk, CONFIG_OPTION, headListed, optionalString, sizeOption, type BulkRun, type Outcome, type Tool, type Values } from './run.ts';
import { readKeyFile, UsageError } from './session.ts';
import type { Listed } from './walk.ts';

const MiB = 1024 * 1024;

/** Which key new objects get: an SSE-C key, or SSE-S3/KMS from the KMS (a new external key per object). */
type Target = { readonly customerKey: CustomerKey } | { readonly managed: ManagedKey };

async function targetOf(values: Values, run: BulkRun): Promise<Target> {
  const keyFile = optionalString(values, 'sse-c-key-file');
  const sseS3 = values['sse-s3'] === true;
  const kmsKey = optionalString(values, 'sse-kms');
  if ([keyFile !== undefined, sseS3, kmsKey !== undefined].filter(Boolean).length !== 1) {
    throw new UsageError('give exactly one of --sse-c-key-file PATH, --sse-s3, --sse-kms KEYID');
  }
  if (keyFile !== undefined) return { customerKey: readKeyFile(keyFile) };
  const kms = kmsOf(run.session.config);
  if (!kms) throw new UsageError('--sse-s3/--sse-kms need a KMS in the configuration (SSEC_PROXY_KMS_*)');
  const managed: ManagedKey = sseS3 ? { mode: 'AES256', keyId: kms.defaultKeyId } : { mode: 'aws:kms', keyId: kmsKey! };
  // Checked once before any object: an unknown or disabled key would fail every one of them.
  const status = await kms.status(managed.keyId);
  if (status !== 'enabled') throw new UsageError(`the KMS key "${managed.keyId}" is ${status === 'missing' ? 'unknown to the configured KMS' : 'disabled'}`);
  return { managed };
}

/** The key this object is written under, and the KMS entry that stores it sealed; the KMS's key is wiped after. */
async function keyFor(ctx: RequestContext, target: Target, bucket: string, key: string): Promise<{ customerKey: CustomerKey; meta: Record<string, string> } & Disposable> {
  if ('customerKey' in target) return { customerKey: target.customerKey, meta: {}, [Symbol.dispose]: () => {} };
  const k = await newManagedKey(ctx, target.managed, bucket, key);
  return { ...k, [Symbol.dispose]: () => wipe(k.customerKey.key) };
}

function changedOn(status: number): Error {
  return status === 412 || status === 404 ? new ObjectChanged('the object changed since it was read') : new S3Error('ServiceUnavailable', `reading the object answered HTTP ${status}`);
}

/** One PUT: the plaintext (pinned to the ETag read) through the sealing stages, If-Match that ETag. */
async function putEncrypted(run: BulkRun, stored: StoredObject, headers: Record<string, string>, dataKey: Buffer, chunkSize: number): Promise<void> {
  const { ctx } = run.session;
  await conditionally(ctx, stored, run.progress, async () => {
    const plain = await readPlaintext(ctx, stored, undefined, undefined, undefined, changedOn);
    await pauseBeforeWrite(run.env, run.progress, stored.key);
    await beforeWrite(ctx, stored).catch((e: unknown) => {
      plain.destroy();
      throw e;
    });
    const sealed = sealingStages({ dataKey, chunkSize, partNumber: 0, plainSize: stored.size, given: () => ({}) });
    const target = { path: objectPath(stored.bucket, stored.key), query: [], headers: { ...headers, ...ifMatch(stored.etag) }, length: sealed.cipherSize };
    const up = await streamUpload(ctx, target, plain, sealed.stages);
    if (up.statusCode === 200 || up.statusCode === 412) {
      await up[Symbol.asyncDispose]();
      return { status: up.statusCode, result: undefined };
    }
    throw await refusal(up, 'writing the encrypted object');
  });
}

/**
 * A multipart upload of the plaintext in --part-size parts, each sealed as the proxy seals an upload's parts
 * (its own part number, a tail record): readers map it as any multipart object the proxy wrote.
 */
async function multipartEncrypted(run: BulkRun, stored: StoredObject, headers: Record<string, string>, dataKey: Buffer, chunkSize: number, partSize: number): Promise<void> {
  const { ctx } = run.session;
  const path = objectPath(stored.bucket, stored.key);
  let uploadId: string | undefined;
  {
    await using created = await upstreamRequest(ctx, { method: 'POST', path, query: [['uploads', '']], headers: { ...headers, [LAYOUT_META]: 'tails' } });
    if (created.statusCode !== 200) throw await refusal(created, 'starting the multipart upload');
    uploadId = textAt(await readText(created), 'InitiateMultipartUploadResult', 'UploadId');
    if (!uploadId) throw new S3Error('InternalError', 'the store gave no upload id');
  }
  const id = uploadId;
  try {
    const count = Math.max(1, Math.ceil(stored.size / partSize));
    const parts: Array<{ partNumber: number; etag: string }> = [];
    for (let i = 0; i < count; i++) {
      const start = i * partSize;
      const end = Math.min(stored.size, start + partSize) - 1;
      const plain: Readable = await readPlaintext(ctx, stored, undefined, undefined, { start, end }, changedOn);
      const sealed = sealingStages({ dataKey, chunkSize, partNumber: i + 1, plainSize: end - start + 1, tail: true, given: () => ({}) });
      const query: Array<[string, string]> = [
        ['partNumber', String(i + 1)],
        ['uploadId', id],
      ];
      const up = await streamUpload(ctx, { path, query, headers: {}, length: sealed.cipherSize }, plain, sealed.stages);
      if (up.statusCode !== 200) throw await refusal(up, `writing part ${i + 1}`);
      const etag = up.headers['etag'];
      if (typeof etag !== 'string') throw new S3Error('InternalError', `the store gave part ${i + 1} no ETag`);
      parts.push({ partNumber: i + 1, etag });
    }
    await pauseBeforeWrite(run.env, run.progress, stored.key);
    // RGW ignores If-Match on CompleteMultipartUpload: the ETag is checked again right before it.
    await assertUnchanged(ctx, stored);
    const body = buildCompleteMultipartUpload(parts);
    await conditionally(ctx, stored, run.progress, async () => {
      await using done = await upstreamRequest(ctx, {
        method: 'POST',
        path,
        query: [['uploadId', id]],
        headers: {
          'content-type': 'application/xml',
          'content-length': String(Buffer.byteLength(body)),
          'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'),
          ...ifMatch(stored.etag),
        },
        body,
      });
      if (done.statusCode === 412) return { status: 412, result: undefined };
      const xml = await readText(done);
      if (done.statusCode !== 200 || hasRoot(xml, 'Error') || xml.includes('<Error>')) throw new S3Error('InternalError', `completing the multipart upload failed (HTTP ${done.statusCode})`);
      return { status: 200, result: undefined };
    });
    uploadId = undefined;
  } finally {
    if (uploadId !== undefined) {
      // Nothing half-written is left behind (parts cost storage until aborted).
      await upstreamRequest(ctx, { method: 'DELETE', path, query: [['uploadId', uploadId]] }).then(
        (up) => up[Symbol.asyncDispose](),
        () => {},
      );
    }
  }
}

/** S3's most parts in one upload. */
const MAX_PARTS = 10_000;

/**
 * The plaintext part size for an object of `size`: --part-size, or larger where that would need more than
 * 10,000 parts (the store would refuse part 10,001 after hours of work), rounded up to whole chunks.
 */
export function partSizeFor(size: number, partSize: number, chunkSize: number): number {
  const least = Math.max(partSize, Math.ceil(size / MAX_PARTS));
  return Math.ceil(least / chunkSize) * chunkSize;
}

async function encryptOne(run: BulkRun, listed: Listed, target: Target, partSize: number): Promise<Outcome> {
  const stored = await headListed(run, listed);
  if (stored === 'gone' || stored === 'store-sse-c') return { outcome: stored };
  const { mode } = modeOf(stored);
  if (mode !== 'plain') return { outcome: 'already-encrypted', mode };
  if (run.dryRun) return { outcome: 'would-encrypt' };
  const { ctx, config } = run.session;
  const headers = { ...keptHeaders(stored), ...(await taggingOf(ctx, stored)) };
  using key = await keyFor(ctx, target, stored.bucket, stored.key);
  const envelope = sealEnvelope({ customerKey: key.customerKey.key, bucket: stored.bucket, key: stored.key, chunkSizeLog2: config.chunkSizeLog2 });
  using dataKey = scoped(envelope.dataKey);
  headers[ENVELOPE_META] = envelope.value;
  Object.assign(headers, key.meta);
  try {
    if (stored.size > partSize) await multipartEncrypted(run, stored, headers, dataKey, envelope.chunkSize, partSizeFor(stored.size, partSize, envelope.chunkSize));
    else await putEncrypted(run, stored, headers, dataKey, envelope.chunkSize);
  } catch (e) {
    if (e instanceof ObjectChanged) return { outcome: 'changed' };
    throw e;
  }
  return { outcome: 'encrypted', mode: 'customerKey' in target ? 'sse-c' : target.managed.mode === 'AES256' ? 'sse-s3' : 'sse-kms' };
}

export const encryptExisting: Tool = {
  name: 'encrypt-existing',
  summary: 'encrypt the plaintext objects of a bucket in place',
  usage: '--bucket B [--prefix P] (--sse-c-key-file PATH | --sse-s3 | --sse-kms KEYID) [--dry-run] [--concurrency N] [--state FILE] [--part-size SIZE]',
  options: {
    ...BULK_OPTIONS,
    'sse-c-key-file': { type: 'string', arg: 'PATH', help: 'encrypt with this SSE-C key (32 raw bytes or their base64)' },
    'sse-s3': { type: 'boolean', help: "encrypt as SSE-S3 (the KMS's default master key)" },
    'sse-kms': { type: 'string', arg: 'KEYID', help: 'encrypt as SSE-KMS under this master key' },
    'part-size': { type: 'string', arg: 'SIZE', help: 'objects above SIZE are written as multipart uploads of SIZE parts (default 64MiB, min 5MiB)' },
    ...CONFIG_OPTION,
  },
  notes:
    'Only plaintext objects change; encrypted ones are skipped, so a re-run is safe with or without --state.\n' +
    'Each object is replaced only if its ETag is still the one read: one a client rewrote meanwhile is left\n' +
    'alone and counted as "changed" (exit code 3; a re-run picks it up). Versioned buckets get a new version;\n' +
    'the plaintext versions stay until you delete them. Content-type, object headers, user metadata and tags\n' +
    'are kept; ACLs and object-lock settings are not copied.',
  async run(values, io) {
    const partSize = sizeOption(values, 'part-size', 64 * MiB, 5 * MiB, 5 * 1024 * MiB);
    let target: Target | undefined;
    try {
      const { code } = await bulk('encrypt-existing', values, io, (run, listed) => encryptOne(run, listed, target!, partSize), {
        preflight: async (run) => {
          target = await targetOf(values, run);
          return 'customerKey' in target ? `sse-c ${target.customerKey.keyMd5}` : `${target.managed.mode} ${target.managed.keyId}`;
        },
      });
      return code;
    } finally {
      if (target && 'customerKey' in target) wipe(target.customerKey.key);
    }
  },
};
