/**
 * The process's JSON log (pino): one access line per request, warnings for server-side failures. Lines are
 * built from named fields only — never from request headers or query strings — and `withoutSecrets` drops
 * the names that could carry secrets should they ever be added, so SSE-C keys, signatures and credentials
 * cannot reach a log.
 */
import cluster from 'node:cluster';
import { pino, type Logger } from 'pino';

/** The cluster worker this process is (SSEC_PROXY_WORKERS > 1), named in every log line; undefined otherwise. */
export const workerId: number | undefined = cluster.isWorker ? cluster.worker?.id : undefined;

/** One line for an operator on stderr, naming the worker that writes it. */
export function note(msg: string): void {
  process.stderr.write(workerId === undefined ? `${msg}\n` : `[worker: ${workerId}] ${msg}\n`);
}

/** Fields never written: whole (top level), or inside any object field (one level down). */
const SECRET_FIELDS: ReadonlySet<string> = new Set(['headers', 'query', 'authorization']);
const SECRET_NESTED = [
  'authorization',
  'x-amz-server-side-encryption-customer-key',
  'x-amz-copy-source-server-side-encryption-customer-key',
  'SSECustomerKey',
  'signature',
  'secretAccessKey',
];

/**
 * The line without the fields that could carry secrets. In place of pino's `redact` (fast-redact), which cost
 * ~2 % of the CPU of a small request for lines that are made of named fields: here an access line (all
 * primitives) is only looked over, and a copy is made only when something must go.
 */
export function withoutSecrets(line: Record<string, unknown>): Record<string, unknown> {
  let out = line;
  for (const name in line) {
    const value = line[name];
    if (SECRET_FIELDS.has(name)) {
      if (out === line) out = { ...line };
      delete out[name];
    } else if (typeof value === 'object' && value !== null && SECRET_NESTED.some((n) => n in value)) {
      if (out === line) out = { ...line };
      const inner: Record<string, unknown> = { ...(value as Record<string, unknown>) };
      for (const n of SECRET_NESTED) delete inner[n];
      out[name] = inner;
    }
  }
  return out;
}

/** Levels of SSEC_PROXY_LOG_LEVEL, most verbose first: access lines are `info`, the cause of a 5xx `warn`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(destination: NodeJS.WritableStream = process.stdout, level: LogLevel = 'info'): Logger {
  return pino(
    {
      level,
      base: workerId === undefined ? undefined : { worker: workerId },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: withoutSecrets },
    },
    destination as pino.DestinationStream,
  );
}
