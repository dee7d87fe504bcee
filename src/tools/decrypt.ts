/**
 * `decrypt`: one object's plaintext, with no proxy running: read straight from the store with the upstream
 * credentials, or from a downloaded ciphertext file and its metadata (FORMAT.md is the contract). The
 * plaintext is written to a temporary file beside --out and renamed only once every chunk has verified, so a
 * tampered or truncated object leaves no --out file at all. This module imports nothing of the HTTP server.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { link, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable, Transform } from 'node:stream';
import { ConfigError, loadConfig } from '../config.ts';
import { decryptStages, layoutFromReads, planWhole, tailLayoutFromReads, type ReadBytes } from '../format/parts.ts';
import { readKeyOf } from '../objects/keys.ts';
import { layoutOf } from '../objects/layout.ts';
import { openObject, type OpenedObject } from '../objects/open.ts';
import { readPlaintext } from '../objects/read.ts';
import { isMultipart, requestObject, storedObject, type StoredHeaders, type StoredObject } from '../objects/stored.ts';
import { S3Error } from '../s3/errors.ts';
import type { CustomerKey } from '../sse-c/customer-key.ts';
import { wipe } from '../sse-c/data-key.ts';
import { modeOf } from './modes.ts';
import { ByteProgress, formatBytes } from './progress.ts';
import { CONFIG_OPTION, optionalString, requiredString, type Tool, type ToolIo, type Values } from './run.ts';
import { openSession, readKeyFile, UsageError } from './session.ts';

/**
 * The object's headers from a metadata file: aws-cli's `s3api head-object` output (`Metadata`, `ETag`,
 * `ContentLength`), or a JSON object of the HEAD's response headers (`x-amz-meta-…`, `etag`).
 */
export function headersFromMetadata(text: string, fileSize: number): StoredHeaders {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--metadata is not JSON: ${(e as Error).message}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError('--metadata must be a JSON object');
  const out: Record<string, string> = {};
  const d = doc as Record<string, unknown>;
  const put = (name: string, v: unknown) => {
    if (typeof v === 'string') out[name.toLowerCase()] = v;
  };
  if (d.Metadata && typeof d.Metadata === 'object') {
    for (const [k, v] of Object.entries(d.Metadata as Record<string, unknown>)) put(k.toLowerCase().startsWith('x-amz-meta-') ? k : `x-amz-meta-${k}`, v);
    put('etag', d.ETag);
  } else {
    for (const [k, v] of Object.entries(d)) put(k, Array.isArray(v) ? v[0] : v);
  }
  // The file is what is decrypted: its size is the stored size.
  out['content-length'] = String(fileSize);
  delete out['content-range'];
  return out;
}

/** Ranged reads of a local file (for the layout of a multipart object). */
function fileReader(path: string): { read: ReadBytes; close: () => Promise<void> } {
  const handle = open(path, 'r');
  return {
    read: async (offset, length) => {
      const h = await handle;
      const b = Buffer.alloc(length);
      const { bytesRead } = await h.read(b, 0, length, offset);
      return b.subarray(0, bytesRead);
    },
    close: async () => (await handle).close(),
  };
}

/**
 * `stream` into a temporary file put at `out` once it has all verified; removed on any failure and on
 * SIGINT/SIGTERM (no partial plaintext is left behind). Without `force` an `out` that appeared meanwhile is
 * not replaced (a hard link fails on an existing name, where a rename would replace it).
 */
async function writeAtomically(stream: Readable, stages: Transform[], out: string, io: ToolIo, total: number, force: boolean): Promise<number> {
  const tmp = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.partial`);
  let bytes = 0;
  const file = createWriteStream(tmp, { mode: 0o600, flags: 'wx' });
  const progress = new ByteProgress('decrypt', total, { tty: io.stderrIsTty, write: io.stderr });
  const onSignal = (signal: NodeJS.Signals) => {
    rmSync(tmp, { force: true });
    progress.finish();
    io.stderr(`decrypt: ${signal}: stopped, nothing written to ${out}\n`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let paused = io.env.SSEC_TOOLS_TEST_PAUSE_DECRYPT !== '1';
  try {
    await (pipeline as (...s: unknown[]) => Promise<void>)(stream, ...stages, async function* (source: AsyncIterable<Buffer>) {
      for await (const c of source) {
        bytes += c.length;
        progress.add(c.length);
        yield c;
        if (!paused) {
          paused = true;
          await pauseForTest(io);
        }
      }
    }, file);
    if (force) await rename(tmp, out);
    else {
      const exists = () => new UsageError(`--out ${out} exists (it appeared while decrypting): nothing written; --force replaces it`);
      try {
        await link(tmp, out);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw exists();
        // A file system without hard links: checked, then renamed (only that moment is unguarded).
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
        if (existsSync(out)) throw exists();
        await rename(tmp, out);
      }
      await rm(tmp, { force: true });
    }
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    progress.finish();
  }
  return bytes;
}

/** Tests only: stops after the first chunk (some plaintext in the temporary file) until a signal ends the run. */
async function pauseForTest(io: ToolIo): Promise<void> {
  io.stderr(JSON.stringify({ tool: 'decrypt', event: 'note', paused: true }) + '\n');
  await new Promise<never>(() => setInterval(() => {}, 1000));
}

function wrongMode(stored: Pick<StoredObject, 'envelope' | 'headers'>, customerKey: CustomerKey | undefined): void {
  const { mode } = modeOf(stored);
  if (mode === 'plain') throw new UsageError('the object is stored in plaintext: there is nothing to decrypt (read it with any S3 client)');
  if ((mode === 'sse-s3' || mode === 'sse-kms') && customerKey) throw new UsageError(`the object is ${mode.toUpperCase()}: its key comes from the KMS; drop --sse-c-key-file`);
  if (mode === 'sse-c' && !customerKey) throw new UsageError('the object is SSE-C: give its key with --sse-c-key-file');
}

function openWith(stored: StoredObject, key: CustomerKey | undefined): OpenedObject {
  try {
    return openObject(stored, key)!;
  } catch (e) {
    if (e instanceof S3Error && e.code === 'AccessDenied') throw new S3Error('AccessDenied', 'the key is not the one this object was encrypted with (or the object was moved or its metadata edited)');
    throw e;
  }
}

async function fromStore(values: Values, io: ToolIo, customerKey: CustomerKey | undefined, out: string): Promise<number> {
  const bucket = requiredString(values, 'bucket');
  const key = requiredString(values, 'key');
  const versionId = optionalString(values, 'version-id');
  const session = openSession(optionalString(values, 'config'), io.env);
  const { ctx } = session;
  try {
    const name = { bucket, key, ...(versionId ? { versionId } : {}) };
    let stored: StoredObject;
    {
      await using up = await requestObject(ctx, name, 'HEAD');
      if (up.statusCode === 404) throw new S3Error('NoSuchKey', `${bucket}/${key} does not exist${versionId ? ` in version ${versionId}` : ''}`);
      if (up.statusCode !== 200) throw new S3Error('ServiceUnavailable', `HEAD answered HTTP ${up.statusCode}`, { status: up.statusCode });
      stored = storedObject(name, up.headers);
    }
    wrongMode(stored, customerKey);
    const k = await readKeyOf(ctx, stored, customerKey);
    using opened = openWith(stored, k);
    try {
      const layout = await layoutOf(ctx, stored, { chunkSize: opened.chunkSize, dataKey: opened.dataKey });
      const stream = await readPlaintext(ctx, stored, opened, layout, undefined, (status) => new S3Error('ServiceUnavailable', `the object changed or could not be read (HTTP ${status})`));
      return await writeAtomically(stream, [], out, io, layout.plainSize, values.force === true);
    } finally {
      if (k?.managed) wipe(k.key);
    }
  } finally {
    await session.close();
  }
}

async function fromFile(values: Values, io: ToolIo, customerKey: CustomerKey | undefined, out: string, input: string): Promise<number> {
  const bucket = requiredString(values, 'bucket');
  const key = requiredString(values, 'key');
  const metaPath = requiredString(values, 'metadata');
  let size: number;
  try {
    size = statSync(input).size;
  } catch (e) {
    throw new UsageError(`--in: cannot read ${input} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let text: string;
  try {
    text = readFileSync(metaPath, 'utf8');
  } catch (e) {
    throw new UsageError(`--metadata: cannot read ${metaPath} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const stored = storedObject({ bucket, key }, headersFromMetadata(text, size));
  wrongMode(stored, customerKey);
  // Only SSE-S3/KMS objects need the configuration (its KMS); an SSE-C file decrypts with nothing but the key.
  let config;
  try {
    config = loadConfig({ configPath: optionalString(values, 'config'), env: io.env });
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
  const k = await readKeyOf({ config }, stored, customerKey);
  try {
    using opened = openWith(stored, k);
    const file = fileReader(input);
    let layout;
    try {
      layout = stored.tails
        ? await tailLayoutFromReads(file.read, stored.chunksSize, opened.chunkSize, opened.dataKey)
        : await layoutFromReads(file.read, stored.chunksSize, opened.chunkSize, isMultipart(stored, { probeAllLayouts: stored.etag === '' }));
    } finally {
      await file.close();
    }
    const source = createReadStream(input, { start: 0, end: stored.chunksSize - 1 });
    return await writeAtomically(source, decryptStages(planWhole(layout), opened.dataKey, opened.chunkSize), out, io, layout.plainSize, values.force === true);
  } finally {
    if (k?.managed) wipe(k.key);
  }
}

export const decrypt: Tool = {
  name: 'decrypt',
  summary: "an object's plaintext, from the store or a downloaded file, no proxy needed",
  usage: '--bucket B --key K [--version-id V] [--sse-c-key-file PATH] --out PATH [--force]\n' + '       s3-ssec-proxy decrypt --in FILE --metadata FILE.json --bucket B --key K [--sse-c-key-file PATH] --out PATH [--force]',
  options: {
    bucket: { type: 'string', arg: 'B', help: 'the bucket the object is stored in (its key is bound to its name)' },
    key: { type: 'string', arg: 'K', help: 'the object key' },
    'version-id': { type: 'string', arg: 'V', help: 'a version of the object (default: the current one)' },
    'sse-c-key-file': { type: 'string', arg: 'PATH', help: 'the SSE-C key (32 raw bytes or their base64); none for SSE-S3/KMS objects (the configured KMS)' },
    out: { type: 'string', short: 'o', arg: 'PATH', help: 'where the plaintext goes (written only once all of it has verified; never an existing file)' },
    force: { type: 'boolean', help: 'replace --out if it exists' },
    in: { type: 'string', arg: 'FILE', help: 'decrypt this downloaded ciphertext instead of reading the store' },
    metadata: { type: 'string', arg: 'FILE', help: "with --in: the object's metadata as JSON (`aws s3api head-object` output, or its HEAD headers)" },
    ...CONFIG_OPTION,
  },
  notes:
    'The plaintext is verified chunk by chunk as it is written; a tampered, truncated or re-named object fails\n' +
    'with an error and leaves no --out file; so does Ctrl-C. Exit codes: 0 written; 1 failed; 2 usage or configuration error.',
  async run(values, io) {
    const out = requiredString(values, 'out');
    // Refused before anything is read: `--out key.bin` must not destroy the only copy of a key.
    if (values.force !== true && existsSync(out)) throw new UsageError(`--out ${out} exists: nothing written; --force replaces it`);
    const keyFile = optionalString(values, 'sse-c-key-file');
    const customerKey = keyFile !== undefined ? readKeyFile(keyFile) : undefined;
    const input = optionalString(values, 'in');
    const started = Date.now();
    try {
      const bytes = input !== undefined ? await fromFile(values, io, customerKey, out, input) : await fromStore(values, io, customerKey, out);
      const summary = { tool: 'decrypt', event: 'summary', bytes, out, seconds: (Date.now() - started) / 1000 };
      io.stderr(io.stderrIsTty ? `decrypt: ${formatBytes(bytes)} written to ${out}\n` : JSON.stringify(summary) + '\n');
      return 0;
    } finally {
      if (customerKey) wipe(customerKey.key);
    }
  },
};
