/**
 * `rotate`: re-seals objects' data keys under a new key with no body byte moved: SSE-C objects from an old
 * customer key to a new one, or SSE-S3/KMS objects' external keys re-wrapped by the KMS (under the current
 * version of their master key). The store copies each object onto itself with the new envelope
 * (objects/reseal.ts, the path CopyObject takes; in parts above the copy threshold, objects/copy-parts.ts),
 * pinned to the ETag read (x-amz-copy-source-if-match).
 * Objects already under the new SSE-C key are skipped, so a re-run is safe with or without --state.
 */
import { createHash } from 'node:crypto';
import type { RequestContext } from '../context.ts';
import { copyInParts } from '../objects/copy-parts.ts';
import { newManagedKey, readKeyOf } from '../objects/keys.ts';
import { openObject, type OpenedObject } from '../objects/open.ts';
import { resealedMeta, type ResealTarget } from '../objects/reseal.ts';
import type { StoredObject } from '../objects/stored.ts';
import { S3Error } from '../s3/errors.ts';
import { objectPath } from '../s3/operation.ts';
import { hasRoot, xmlEscape } from '../s3/xml.ts';
import type { CustomerKey } from '../sse-c/customer-key.ts';
import { wipe } from '../sse-c/data-key.ts';
import { KMS_META, parseKmsMeta } from '../sse-kms/managed.ts';
import { readText } from '../upstream.ts';
import { upstreamRequest } from '../context.ts';
import { modeOf } from './modes.ts';
import { assertUnchanged, keptHeaders, ObjectChanged, pauseBeforeWrite, refusal, tagsOf } from './replace.ts';
import { BULK_OPTIONS, bulk, CONFIG_OPTION, headListed, optionalString, type BulkRun, type Outcome, type Tool, type Values } from './run.ts';
import { readKeyFile, UsageError } from './session.ts';
import type { Listed } from './walk.ts';

/** The largest object the store copies in one request (S3's limit). */
const MAX_SINGLE_COPY = 5 * 1024 ** 3;

type Plan = { readonly kind: 'sse-c'; readonly oldKey: CustomerKey; readonly newKey: CustomerKey } | { readonly kind: 'kms' };

function planOf(values: Values, run: BulkRun): Plan {
  const oldFile = optionalString(values, 'old-sse-c-key-file');
  const newFile = optionalString(values, 'new-sse-c-key-file');
  const kms = values['kms'] === true;
  if (kms) {
    if (oldFile !== undefined || newFile !== undefined) throw new UsageError('give either --kms or the two SSE-C key files, not both');
    if (!run.session.config.kms) throw new UsageError('--kms needs a KMS in the configuration (SSEC_PROXY_KMS_*)');
    return { kind: 'kms' };
  }
  if (oldFile === undefined || newFile === undefined) throw new UsageError('give --old-sse-c-key-file and --new-sse-c-key-file, or --kms');
  const oldKey = readKeyFile(oldFile, '--old-sse-c-key-file');
  const newKey = readKeyFile(newFile, '--new-sse-c-key-file');
  if (oldKey.keyMd5 === newKey.keyMd5) throw new UsageError('the old and the new key are the same key');
  return { kind: 'sse-c', oldKey, newKey };
}

/** Opens with `key`, or undefined when the key is not the object's (S3's wrong-key 403). */
function tryOpen(stored: StoredObject, key: CustomerKey): OpenedObject | undefined {
  try {
    return openObject(stored, key);
  } catch (e) {
    if (e instanceof S3Error && e.code === 'AccessDenied') return undefined;
    throw e;
  }
}

/**
 * The copy of `stored` onto itself with `meta` (the re-sealed entries), its other metadata and tags kept; above
 * the configured copy threshold (at most the store's 5 GiB single-copy limit) a copy in parts, as CopyObject does.
 * `beforeWrite` runs right before the request that replaces the object (the copy, or the Complete).
 */
async function copyOntoItself(ctx: RequestContext, stored: StoredObject, meta: Record<string, string>, beforeWrite: () => Promise<void>): Promise<void> {
  const tags = await tagsOf(ctx, stored);
  const source = objectPath(stored.bucket, stored.key);
  if (stored.size > Math.min(ctx.config.copyMultipartThreshold, MAX_SINGLE_COPY)) {
    const tagging = tags.map((t) => `${encodeURIComponent(t.key)}=${encodeURIComponent(t.value)}`).join('&');
    const headers = { ...keptHeaders(stored), ...meta, ...(tagging ? { 'x-amz-tagging': tagging } : {}) };
    // A concurrent writer makes the part copies fail their x-amz-copy-source-if-match: the upload is aborted.
    await assertUnchanged(ctx, stored);
    let copied;
    try {
      // Part copies are pinned to the ETag, the Complete is not (RGW ignores If-Match on it): the ETag is checked
      // again right before it, leaving only the moment between that HEAD and the Complete (docs/OPERATIONS.md).
      copied = await copyInParts(ctx, stored, stored, headers, source, async () => {
        await beforeWrite();
        await assertUnchanged(ctx, stored);
      });
    } catch (e) {
      if (e instanceof S3Error && e.code === 'PreconditionFailed') throw new ObjectChanged('the object changed since it was read');
      throw e;
    }
    if ('relay' in copied) {
      await using refused = copied.relay;
      throw await refusal(refused, 'starting the multipart copy');
    }
    return;
  }
  await beforeWrite();
  await using up = await upstreamRequest(ctx, {
    method: 'PUT',
    path: source,
    query: [],
    headers: {
      ...keptHeaders(stored),
      ...meta,
      'x-amz-copy-source': source,
      'x-amz-metadata-directive': 'REPLACE',
      // The envelope re-sealed belongs to exactly the version read: the store copies that one or nothing.
      'x-amz-copy-source-if-match': stored.etag,
    },
  });
  if (up.statusCode === 412 || up.statusCode === 404) throw new ObjectChanged('the object changed since it was read');
  if (up.statusCode !== 200) throw await refusal(up, 'copying the object onto itself');
  const xml = await readText(up);
  // S3 reports late copy failures inside a 200.
  if (hasRoot(xml, 'Error') || xml.includes('<Error>')) throw new S3Error('InternalError', 'the store failed the copy');
  if (tags.length) await restoreTags(ctx, stored, tags, up.headers['x-amz-version-id']);
}

/**
 * Ceph RGW (16) drops an object's tags when it is copied onto itself, whatever the tagging directive: they are
 * put back on the version the copy wrote (a second request: until it lands, the object shows no tags).
 */
async function restoreTags(ctx: RequestContext, stored: StoredObject, tags: Array<{ key: string; value: string }>, version: string | string[] | undefined): Promise<void> {
  const body =
    '<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>' +
    tags.map((t) => `<Tag><Key>${xmlEscape(t.key)}</Key><Value>${xmlEscape(t.value)}</Value></Tag>`).join('') +
    '</TagSet></Tagging>';
  await using up = await upstreamRequest(ctx, {
    method: 'PUT',
    path: objectPath(stored.bucket, stored.key),
    query: [['tagging', ''], ...(typeof version === 'string' ? ([['versionId', version]] as Array<[string, string]>) : [])],
    headers: {
      'content-type': 'application/xml',
      'content-length': String(Buffer.byteLength(body)),
      'content-md5': createHash('md5').update(body).digest('base64'),
      'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'),
    },
    body,
  });
  if (up.statusCode !== 200) throw await refusal(up, 'putting the tags back after the copy');
}

async function rotateOne(run: BulkRun, listed: Listed, plan: Plan): Promise<Outcome> {
  const stored = await headListed(run, listed);
  if (stored === 'gone' || stored === 'store-sse-c') return { outcome: stored };
  const { mode } = modeOf(stored);
  const { ctx } = run.session;
  let target: ResealTarget;
  let opened: OpenedObject | undefined;
  let wipeAfter: Buffer[] = [];
  if (plan.kind === 'sse-c') {
    if (mode !== 'sse-c') return { outcome: 'not-sse-c', mode };
    opened = tryOpen(stored, plan.oldKey);
    if (!opened) {
      const already = tryOpen(stored, plan.newKey);
      if (already) {
        already[Symbol.dispose]();
        return { outcome: 'already-rotated' };
      }
      throw new S3Error('AccessDenied', 'the object opens with neither the old nor the new key');
    }
    target = { customerKey: plan.newKey, meta: {}, bucket: stored.bucket, key: stored.key };
  } else {
    if (mode !== 'sse-s3' && mode !== 'sse-kms') return { outcome: 'not-kms', mode };
    if (run.dryRun) return { outcome: 'would-rotate' };
    const oldKey = (await readKeyOf(ctx, stored, undefined))!;
    wipeAfter.push(oldKey.key);
    opened = openObject(stored, oldKey);
    const { key: managed } = parseKmsMeta(String(stored.headers[KMS_META]));
    const fresh = await newManagedKey(ctx, managed, stored.bucket, stored.key);
    wipeAfter.push(fresh.customerKey.key);
    target = { customerKey: fresh.customerKey, meta: fresh.meta, bucket: stored.bucket, key: stored.key };
  }
  try {
    if (run.dryRun) return { outcome: 'would-rotate' };
    const meta = resealedMeta(stored, opened!, target);
    await copyOntoItself(ctx, stored, meta, () => pauseBeforeWrite(run.env, run.progress, stored.key));
    return { outcome: 'rotated', mode };
  } catch (e) {
    if (e instanceof ObjectChanged) return { outcome: 'changed' };
    throw e;
  } finally {
    opened?.[Symbol.dispose]();
    wipe(...wipeAfter);
    wipeAfter = [];
  }
}

export const rotate: Tool = {
  name: 'rotate',
  summary: 're-seal objects under a new key, moving no object bytes',
  usage: '--bucket B [--prefix P] (--old-sse-c-key-file A --new-sse-c-key-file B | --kms) [--dry-run] [--concurrency N] [--state FILE]',
  options: {
    ...BULK_OPTIONS,
    'old-sse-c-key-file': { type: 'string', arg: 'PATH', help: 'the SSE-C key the objects are under now' },
    'new-sse-c-key-file': { type: 'string', arg: 'PATH', help: 'the SSE-C key they are re-sealed under' },
    kms: { type: 'boolean', help: "SSE-S3/KMS objects: re-wrap each object's key under the current version of its master key" },
    ...CONFIG_OPTION,
  },
  notes:
    'Only the sealed data key changes (the object metadata): the store copies each object onto itself, so no\n' +
    'object byte passes through the tool. Objects in another mode are skipped; SSE-C objects already under the\n' +
    'new key are skipped, so a re-run is safe. A versioned bucket gets a new version per object; older versions\n' +
    'stay under the old key until deleted. Objects above SSEC_PROXY_COPY_MULTIPART_THRESHOLD (5 GiB) are copied\n' +
    'in parts by the store, still without passing through the tool.',
  async run(values, io) {
    let plan: Plan | undefined;
    try {
      const { code } = await bulk('rotate', values, io, (run, listed) => rotateOne(run, listed, plan!), {
        preflight: (run) => {
          plan = planOf(values, run);
          return plan.kind === 'sse-c' ? `sse-c ${plan.newKey.keyMd5}` : 'kms';
        },
      });
      return code;
    } finally {
      if (plan?.kind === 'sse-c') wipe(plan.oldKey.key, plan.newKey.key);
    }
  },
};
