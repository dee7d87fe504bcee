/**
 * The process's JSON log (pino): one access line per request, warnings for server-side failures. Lines are
 * built from named fields only — never from request headers or query strings — and pino's redaction drops
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

export const REDACTED_PATHS = [
  'headers',
  'query',
  'authorization',
  '*.authorization',
  '*["x-amz-server-side-encryption-customer-key"]',
  '*["x-amz-copy-source-server-side-encryption-customer-key"]',
  '*.SSECustomerKey',
  '*.signature',
  '*.secretAccessKey',
];

/** Levels of SSEC_PROXY_LOG_LEVEL, most verbose first: access lines are `info`, the cause of a 5xx `warn`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(destination: NodeJS.WritableStream = process.stdout, level: LogLevel = 'info'): Logger {
  return pino(
    {
      level,
      base: workerId === undefined ? undefined : { worker: workerId },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, remove: true },
    },
    destination as pino.DestinationStream,
  );
}
