/**
 * SSEC_PROXY_LOG_LEVEL: one of pino's levels, from the environment or the file's `logLevel`; a wrong value is a
 * configuration problem that names the variable.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';

test('the log level comes from SSEC_PROXY_LOG_LEVEL or the file, info by default; anything else is refused', () => {
  assert.equal(loadConfig({ env: {} }).logLevel, 'info');
  assert.equal(loadConfig({ env: { SSEC_PROXY_LOG_LEVEL: 'debug' } }).logLevel, 'debug');
  const file = join(mkdtempSync(join(tmpdir(), 'ssec-log-')), 'config.json');
  writeFileSync(file, JSON.stringify({ logLevel: 'error' }));
  assert.equal(loadConfig({ env: {}, configPath: file }).logLevel, 'error');
  assert.throws(
    () => loadConfig({ env: { SSEC_PROXY_LOG_LEVEL: 'verbose' } }),
    (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('SSEC_PROXY_LOG_LEVEL:')),
  );
});

test('a logger at warn writes warnings and drops access lines', async () => {
  const out = new PassThrough();
  const lines: string[] = [];
  out.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
  const logger = createLogger(out, 'warn');
  logger.info({ requestId: 'A' }, 'request');
  logger.warn({ requestId: 'B' }, 'InternalError: …');
  logger.flush();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { requestId: string; level: string }).requestId),
    ['B'],
  );
});
