/**
 * The process log never writes a field that could carry a secret (headers, query, Authorization, SSE-C keys,
 * signatures, secret keys), at the top of a line or inside one of its objects, whatever a caller passes.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../src/log.ts';

const KEY = 'c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXktMQ==';

test('secret-carrying fields never reach a log line; the rest of the line does', async () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString()));
  const logger = createLogger(out, 'info');
  const line = {
    requestId: 'R1',
    headers: { 'x-amz-server-side-encryption-customer-key': KEY },
    query: { 'X-Amz-Signature': KEY },
    authorization: `AWS4-HMAC-SHA256 Signature=${KEY}`,
    request: {
      method: 'PUT',
      authorization: KEY,
      'x-amz-server-side-encryption-customer-key': KEY,
      'x-amz-copy-source-server-side-encryption-customer-key': KEY,
      SSECustomerKey: KEY,
      signature: KEY,
      secretAccessKey: KEY,
    },
  };
  logger.info(line, 'request');
  logger.info({ requestId: 'R2', status: 200 }, 'request');
  logger.flush();
  await new Promise((r) => setImmediate(r));
  assert.ok(!text.includes(KEY), text);
  const [first, second] = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(first!.requestId, 'R1');
  assert.deepEqual(first!.request, { method: 'PUT' });
  assert.equal(second!.status, 200);
  // The caller's object is left as it was.
  assert.equal(line.request.signature, KEY);
});
