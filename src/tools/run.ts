/**
 * The frame every bulk tool runs in: its command line (shared options plus its own, `--help`), the session,
 * and the walk of a bucket/prefix with bounded concurrency, resume state, progress and a summary. A tool
 * supplies only what it does to one object.
 *
 * Exit codes: 0 done; 1 some objects failed (the rest were done; a re-run retries them); 2 a usage or
 * configuration error (nothing was touched); 3 some objects changed while the tool worked on them and were
 * left as their writer left them (a re-run picks them up); 130 interrupted.
 */
import { parseArgs } from 'node:util';
import { requestObject, storedObject, type StoredObject } from '../objects/stored.ts';
import { S3Error } from '../s3/errors.ts';
import { parseS3Error } from '../s3/xml.ts';
import { readText } from '../upstream.ts';
import { isBucketName } from '../s3/operation.ts';
import { runPool } from './pool.ts';
import { printable, Progress } from './progress.ts';
import { describeError, openSession, UsageError, type Session } from './session.ts';
import { ResumeState, StateMismatch } from './state.ts';
import { walk, type Listed } from './walk.ts';

type OptionSpec = { type: 'string' | 'boolean'; short?: string; help: string; arg?: string };

export interface Tool {
  readonly name: string;
  readonly summary: string;
  /** The usage line(s) after the tool's name. */
  readonly usage: string;
  readonly options: Record<string, OptionSpec>;
  /** Runs with the parsed options; returns the exit code. */
  run(values: Values, io: ToolIo): Promise<number>;
  /** Help paragraphs after the options. */
  readonly notes?: string;
}

export type Values = Record<string, string | boolean | undefined>;

export interface ToolIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly stderrIsTty: boolean;
  readonly env: NodeJS.ProcessEnv;
}

/** The options every bulk tool takes. */
export const BULK_OPTIONS: Record<string, OptionSpec> = {
  bucket: { type: 'string', arg: 'B', help: 'the bucket (required)' },
  prefix: { type: 'string', arg: 'P', help: 'only objects whose key starts with P' },
  concurrency: { type: 'string', arg: 'N', help: 'objects worked on at once (default 4)' },
  state: { type: 'string', arg: 'FILE', help: 'record finished objects in FILE; a re-run with the same FILE skips them' },
  'dry-run': { type: 'boolean', help: 'say what would be done, change nothing' },
};

export const CONFIG_OPTION: Record<string, OptionSpec> = {
  config: { type: 'string', short: 'c', arg: 'FILE', help: 'the proxy configuration file (else SSEC_PROXY_* variables)' },
  help: { type: 'boolean', short: 'h', help: 'this help' },
};

export function helpOf(tool: Tool): string {
  const rows = Object.entries(tool.options).map(([name, o]) => [`${o.short ? `-${o.short}, ` : '    '}--${name}${o.arg ? ` ${o.arg}` : ''}`, o.help] as const);
  const width = Math.max(...rows.map(([l]) => l.length));
  return (
    `s3-ssec-proxy ${tool.name} — ${tool.summary}\n\nUsage: s3-ssec-proxy ${tool.name} ${tool.usage}\n\nOptions:\n` +
    rows.map(([l, h]) => `  ${l.padEnd(width)}  ${h}`).join('\n') +
    '\n\nThe upstream store and its credentials come from the proxy configuration (SSEC_PROXY_UPSTREAM_*, --config);\n' +
    'no proxy needs to run. Keys are read from files, never from the command line, and never printed.\n' +
    (tool.notes ? `\n${tool.notes}\n` : '')
  );
}

/** Parses `argv` for `tool` and runs it. */
export async function runTool(tool: Tool, argv: string[], io: ToolIo): Promise<number> {
  let values: Values;
  try {
    const parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: Object.fromEntries(Object.entries(tool.options).map(([n, o]) => [n, o.short ? { type: o.type, short: o.short } : { type: o.type }])),
    });
    values = parsed.values as Values;
  } catch (e) {
    io.stderr(`${(e as Error).message}\n\n${helpOf(tool)}`);
    return 2;
  }
  if (values.help) {
    io.stdout(helpOf(tool));
    return 0;
  }
  try {
    return await tool.run(values, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`${tool.name}: ${printable(e.message)}\n`);
      return 2;
    }
    io.stderr(`${tool.name}: ${printable(describeError(e))}\n`);
    return 1;
  }
}

export function requiredString(values: Values, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

export function optionalString(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function bucketOf(values: Values): string {
  const b = requiredString(values, 'bucket');
  if (!isBucketName(b)) throw new UsageError(`--bucket ${JSON.stringify(b)} is not a bucket name`);
  return b;
}

export function positiveInt(values: Values, name: string, fallback: number, max = 1024): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isSafeInteger(n) || n < 1 || n > max) throw new UsageError(`--${name} must be a whole number from 1 to ${max}`);
  return n;
}

/** A size with an optional unit: 64MiB, 8M, 1048576. */
export function sizeOption(values: Values, name: string, fallback: number, min: number, max: number): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const m = /^(\d+)\s*(k|ki|kib|m|mi|mib|g|gi|gib)?$/i.exec(String(v).trim());
  const unit = (m?.[2] ?? '').toLowerCase()[0];
  const n = m ? Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a size from ${min} to ${max} bytes (e.g. 64MiB)`);
  return n;
}

/** What one object came to: its outcome and anything worth recording (never key material). */
export type Outcome = { outcome: string } & Record<string, unknown>;

export interface BulkRun {
  readonly session: Session;
  readonly bucket: string;
  readonly prefix: string;
  readonly concurrency: number;
  readonly dryRun: boolean;
  readonly progress: Progress;
  readonly state: ResumeState;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * The HEAD of one listed object (its current version); `gone` when it was deleted since the listing;
 * `store-sse-c` when the store itself holds it under SSE-C (written past the proxy): the store answers a HEAD
 * without its key with 400, and nothing can be read or rewritten without that key.
 */
export async function headListed(run: BulkRun, listed: Listed): Promise<StoredObject | 'gone' | 'store-sse-c'> {
  await using up = await requestObject(run.session.ctx, { bucket: run.bucket, key: listed.key }, 'HEAD');
  if (up.statusCode === 404) return 'gone';
  if (up.statusCode === 400) return storeSsecOr400(run, listed);
  if (up.statusCode !== 200) throw new S3Error(up.statusCode === 403 ? 'AccessDenied' : 'ServiceUnavailable', `HEAD answered HTTP ${up.statusCode}`, { status: up.statusCode });
  return storedObject({ bucket: run.bucket, key: listed.key }, up.headers);
}

/**
 * A HEAD's 400 has no body to say why: one byte is asked for to read the store's error. Only the answer to a
 * key-less read of an SSE-C object (AWS: InvalidRequest, RGW: InvalidArgument, both about encryption) means
 * `store-sse-c`; any other 400 fails the object instead of being skipped as encrypted.
 */
export async function storeSsecOr400(run: BulkRun, listed: Listed): Promise<'store-sse-c'> {
  await using up = await requestObject(run.session.ctx, { bucket: run.bucket, key: listed.key }, 'GET', { range: 'bytes=0-0' });
  const { code, message } = up.statusCode === 400 ? parseS3Error(await readText(up)) : {};
  if ((code === 'InvalidRequest' || code === 'InvalidArgument') && /encrypt|customer/i.test(message ?? '')) return 'store-sse-c';
  throw new S3Error('InvalidRequest', `HEAD answered HTTP 400 (the store's error: ${code ?? 'none given'})`, { status: 400 });
}

/**
 * Walks `--bucket`/`--prefix` and applies `each` to every object not already done (per --state), at most
 * `--concurrency` at once. A first SIGINT/SIGTERM starts no new object and lets the running ones finish (their
 * results are recorded); a second one exits at once. Returns the summary and the exit code.
 */
export async function bulk(
  tool: string,
  values: Values,
  io: ToolIo,
  each: (run: BulkRun, listed: Listed) => Promise<Outcome>,
  opts: {
    defaultConcurrency?: number;
    /** Replays a result from the state file into the tool's own totals. */
    replay?: (entry: Record<string, unknown>, listed: Listed) => void;
    /**
     * Checks needing the session (keys, KMS) before anything is listed; throws UsageError. Returns what the run
     * targets (never key material: a key's MD5, a KMS key id) for the --state file's header.
     */
    preflight?: (run: BulkRun) => string | void | Promise<string | void>;
  } = {},
): Promise<{ summary: Record<string, unknown>; code: number; run: BulkRun }> {
  const bucket = bucketOf(values);
  const prefix = optionalString(values, 'prefix') ?? '';
  const concurrency = positiveInt(values, 'concurrency', opts.defaultConcurrency ?? 4);
  const dryRun = values['dry-run'] === true;
  const session = openSession(optionalString(values, 'config'), io.env);
  let state: ResumeState;
  try {
    const target = (await opts.preflight?.({ session, bucket, prefix, concurrency, dryRun, env: io.env } as BulkRun)) ?? '';
    state = new ResumeState(optionalString(values, 'state'), { tool, bucket, prefix, target });
  } catch (e) {
    await session.close();
    if (e instanceof StateMismatch) throw new UsageError(e.message);
    throw e;
  }
  const progress = new Progress(tool, { tty: io.stderrIsTty, write: io.stderr });
  const run: BulkRun = { session, bucket, prefix, concurrency, dryRun, progress, state, env: io.env };
  const pool = { stopped: false };
  let interrupted = false;
  const onSignal = (signal: string) => {
    if (pool.stopped) {
      io.stderr(`\n${tool}: ${signal} again: exiting now\n`);
      process.exit(130);
    }
    pool.stopped = interrupted = true;
    progress.note({ signal }, `${signal}: finishing the objects in progress (again to exit at once)`);
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);
  const listing = async function* () {
    for await (const listed of walk(session.ctx, bucket, prefix)) {
      progress.listed(listed.size);
      yield listed;
    }
    progress.listingDone();
  };
  let failure: unknown;
  try {
    await runPool(
      listing(),
      concurrency,
      async (listed) => {
        const done = state.done(bucket, listed.key);
        if (done) {
          opts.replay?.(done.r, listed);
          progress.object({ bucket, key: listed.key, bytes: listed.size, outcome: 'resumed' }, true);
          return;
        }
        let result: Outcome;
        try {
          result = await each(run, listed);
        } catch (e) {
          progress.object({ bucket, key: listed.key, bytes: listed.size, outcome: 'failed', error: describeError(e) });
          return;
        }
        // A dry run records nothing: the real run must still do the work.
        if (!dryRun && result.outcome !== 'changed') state.record(bucket, listed.key, result);
        progress.object({ ...result, bucket, key: listed.key, bytes: listed.size, outcome: result.outcome });
      },
      pool,
    );
  } catch (e) {
    failure = e;
  } finally {
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
    await session.close();
  }
  const summary = progress.finish({
    bucket,
    ...(prefix ? { prefix } : {}),
    ...(dryRun ? { dryRun: true } : {}),
    ...(interrupted ? { interrupted: true } : {}),
    ...(failure ? { error: describeError(failure) } : {}),
  });
  const count = (o: string) => progress.outcomes.get(o)?.objects ?? 0;
  const code = failure || count('failed') ? 1 : interrupted ? 130 : count('changed') ? 3 : 0;
  return { summary, code, run };
}
