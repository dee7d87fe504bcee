/**
 * The process's JSON log (pino): one access line per request, warnings for server-side failures. Lines are
 * built from named fields only — never from request headers or query strings — and pino's redaction drops
 * the names that could carry secrets should they ever be added, so SSE-C keys, signatures and credentials
 * cannot reach a log.
 */
import { pino, type Logger } from 'pino';

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

export function createLogger(destination: NodeJS.WritableStream = process.stdout): Logger {
  return pino(
    {
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, remove: true },
    },
    destination as pino.DestinationStream,
  );
}
