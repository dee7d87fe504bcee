/**
 * The tools' shared pieces, alone: the resume state (what a killed run leaves is read back), the bounded pool
 * (never more in flight than asked, the listing pulled only as fast as work finishes), the progress output
 * (JSON lines off a terminal, a line with an ETA on one), key files, and metadata files for offline decrypt.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { headersFromMetadata } from '../../src/tools/decrypt.ts';
import { partSizeFor } from '../../src/tools/encrypt-existing.ts';
import { runPool } from '../../src/tools/pool.ts';
import { ByteProgress, Progress } from '../../src/tools/progress.ts';
import { storeSsecOr400, type BulkRun } from '../../src/tools/run.ts';
import { openSession, readKeyFile, UsageError } from '../../src/tools/session.ts';
import { ResumeState, StateMismatch } from '../../src/tools/state.ts';
import { listingPage } from '../../src/tools/walk.ts';

const dir = mkdtempSync(join(tmpdir(), 'ssec-tools-unit-'));

const runA = { tool: 'encrypt-existing', bucket: 'b', prefix: '', target: 'sse-c md5A' };

test('resume state: recorded objects are read back; a torn last line (a killed run) is ignored', () => {
  const path = join(dir, 'a.state');
  const s = new ResumeState(path, runA);
  s.record('b', 'one', { outcome: 'encrypted' });
  s.record('b', 'two', { outcome: 'already-encrypted' });
  appendFileSync(path, '{"tool":"encrypt-existing","b":"b","k":"thr');
  const again = new ResumeState(path, runA);
  assert.equal(again.size, 2);
  assert.deepEqual(again.done('b', 'one')?.r, { outcome: 'encrypted' });
  assert.equal(again.done('b', 'three'), undefined);
  assert.equal(again.done('other', 'one'), undefined);
  // Another tool's file is refused rather than taken as this one's progress.
  assert.throws(() => new ResumeState(path, { ...runA, tool: 'rotate' }), /records a run of "encrypt-existing"/);
});

test('resume state: a file of another run (bucket, prefix, target) or without a header is refused, not taken as done', () => {
  const path = join(dir, 'fp.state');
  new ResumeState(path, runA).record('b', 'one', { outcome: 'encrypted' });
  assert.throws(() => new ResumeState(path, { ...runA, target: 'sse-c md5B' }), (e: Error) => e instanceof StateMismatch && /another target/.test(e.message));
  assert.throws(() => new ResumeState(path, { ...runA, prefix: 'p/' }), StateMismatch);
  assert.throws(() => new ResumeState(path, { ...runA, bucket: 'c' }), StateMismatch);
  // The header names the target by what the tool was given (a key's MD5), never a key.
  assert.equal(JSON.parse(readFileSync(path, 'utf8').split('\n')[0]!).run.target, 'sse-c md5A');
  const old = join(dir, 'old.state');
  writeFileSync(old, '{"tool":"encrypt-existing","b":"b","k":"one","r":{"outcome":"encrypted"}}\n');
  assert.throws(() => new ResumeState(old, runA), /no run header/);
  // An empty file (a run killed before its first line) is taken as a new one.
  const empty = join(dir, 'empty.state');
  writeFileSync(empty, '');
  new ResumeState(empty, runA).record('b', 'x', { outcome: 'encrypted' });
  assert.equal(new ResumeState(empty, runA).size, 1);
});

test('resume state: this run\'s records go to the file only (memory holds only what earlier runs recorded)', () => {
  const path = join(dir, 'mem.state');
  const s = new ResumeState(path, runA);
  for (let i = 0; i < 1000; i++) s.record('b', `k${i}`, { outcome: 'encrypted' });
  assert.equal(s.size, 0);
  assert.equal(s.done('b', 'k1'), undefined);
  assert.equal(new ResumeState(path, runA).size, 1000);
});

test('pool: never more items in flight than the limit, and the source pulled only as work finishes', async () => {
  let inFlight = 0;
  let most = 0;
  let pulled = 0;
  const source = (async function* () {
    for (let i = 0; i < 20; i++) {
      pulled++;
      yield i;
    }
  })();
  const done: number[] = [];
  const releases: Array<() => void> = [];
  const run = runPool(source, 3, async (i) => {
    inFlight++;
    most = Math.max(most, inFlight);
    await new Promise<void>((r) => releases.push(r));
    inFlight--;
    done.push(i);
  });
  while (done.length < 20) {
    await new Promise((r) => setImmediate(r));
    assert.ok(pulled <= done.length + 3, `pulled ${pulled} with ${done.length} done`);
    releases.shift()?.();
  }
  await run;
  assert.equal(most, 3);
  assert.deepEqual([...done].sort((a, b) => a - b), [...Array(20).keys()]);
});

test('pool: once stopped, no new item starts; the running ones finish', async () => {
  const pool = { stopped: false };
  const started: number[] = [];
  await runPool(
    (async function* () {
      for (let i = 0; i < 10; i++) yield i;
    })(),
    2,
    async (i) => {
      started.push(i);
      if (i === 3) pool.stopped = true;
      await new Promise((r) => setImmediate(r));
    },
    pool,
  );
  assert.ok(started.length <= 5, String(started));
});

test('progress off a terminal: one JSON line per object and a summary; resumed objects are counted, not repeated', () => {
  let out = '';
  const p = new Progress('encrypt-existing', { tty: false, write: (t) => (out += t) });
  p.object({ bucket: 'b', key: 'k1', outcome: 'encrypted', bytes: 10 });
  p.object({ bucket: 'b', key: 'k0', outcome: 'resumed', bytes: 5 }, true);
  const summary = p.finish({ bucket: 'b' });
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(lines.map((l) => l.event), ['object', 'summary']);
  assert.equal(lines[0]!.key, 'k1');
  assert.deepEqual(summary.outcomes, { encrypted: { objects: 1, bytes: 10 }, resumed: { objects: 1, bytes: 5 } });
});

test('progress on a terminal: counts, bytes, rate and an ETA once the listing is complete', () => {
  let out = '';
  let now = 0;
  const p = new Progress('inventory', { tty: true, write: (t) => (out += t), now: () => now });
  for (let i = 0; i < 4; i++) p.listed(1024 * 1024);
  p.listingDone();
  now = 2000;
  p.object({ bucket: 'b', key: 'k', outcome: 'plain', bytes: 1024 * 1024 });
  p.note({}, 'x'); // redraws
  assert.match(out, /inventory: 1\/4 objects, 1\.0 MiB\/4\.0 MiB, 512\.0 KiB\/s, ETA 6s \(1 plain\)/);
  p.finish();
});

test('progress on a terminal: control characters in keys and errors reach it escaped, never as such', () => {
  let out = '';
  const p = new Progress('rotate', { tty: true, write: (t) => (out += t) });
  const evil = 'a\x1b]0;pwned\x07\x1b[2J\r\u009b31m\u202e.txt';
  p.object({ bucket: 'b', key: evil, outcome: 'failed', bytes: 1, error: `store said \x1b[31m${evil}` });
  p.note({}, `paused before writing ${evil}`);
  p.finish();
  // Only the progress line's own clear-line sequence is a control.
  const stripped = out.replaceAll('\r\x1b[K', '');
  assert.doesNotMatch(stripped, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/);
  assert.ok(stripped.includes('failed: "b/a\\u001b]0;pwned\\u0007\\u001b[2J\\r\\u009b31m\\u202e.txt": store said \\u001b[31m'), stripped);
});

test("decrypt's progress: bytes of the total, rate and ETA on a terminal; JSON lines otherwise", () => {
  let out = '';
  let now = 0;
  const tty = new ByteProgress('decrypt', 8 * 1024 * 1024, { tty: true, write: (t) => (out += t), now: () => now });
  now = 1000;
  tty.add(2 * 1024 * 1024);
  tty.draw();
  tty.finish();
  assert.match(out, /decrypt: 2\.0 MiB\/8\.0 MiB, 2\.0 MiB\/s, ETA 3s/);
  out = '';
  const json = new ByteProgress('decrypt', 10, { tty: false, write: (t) => (out += t), now: () => now });
  json.add(4);
  json.draw();
  json.finish();
  assert.deepEqual(JSON.parse(out), { tool: 'decrypt', event: 'progress', bytes: 4, total: 10 });
});

test('key files: 32 raw bytes or their base64; anything else refused without showing the content', () => {
  const raw = Buffer.alloc(32, 7);
  writeFileSync(join(dir, 'raw.key'), raw);
  writeFileSync(join(dir, 'b64.key'), raw.toString('base64') + '\n');
  writeFileSync(join(dir, 'bad.key'), 'not-a-key-secret-text');
  assert.deepEqual(readKeyFile(join(dir, 'raw.key')).key, raw);
  assert.deepEqual(readKeyFile(join(dir, 'b64.key')).key, raw);
  assert.equal(readKeyFile(join(dir, 'raw.key')).keyMd5, readKeyFile(join(dir, 'b64.key')).keyMd5);
  assert.throws(
    () => readKeyFile(join(dir, 'bad.key')),
    (e: Error) => e instanceof UsageError && !e.message.includes('not-a-key-secret-text'),
  );
  assert.ok(readFileSync(join(dir, 'raw.key')).equals(raw), 'the file itself is untouched');
});

test('metadata files: aws-cli head-object output or raw HEAD headers; the file gives the size', () => {
  const fromCli = headersFromMetadata(JSON.stringify({ ETag: '"abc-2"', ContentLength: 999, Metadata: { 's3-ssec-proxy': 'ENV', 's3-ssec-proxy-layout': 'tails' } }), 1234);
  assert.deepEqual(fromCli, { 'x-amz-meta-s3-ssec-proxy': 'ENV', 'x-amz-meta-s3-ssec-proxy-layout': 'tails', etag: '"abc-2"', 'content-length': '1234' });
  const fromHead = headersFromMetadata(JSON.stringify({ 'X-Amz-Meta-S3-Ssec-Proxy': 'ENV', etag: '"e"' }), 10);
  assert.deepEqual(fromHead, { 'x-amz-meta-s3-ssec-proxy': 'ENV', etag: '"e"', 'content-length': '10' });
  assert.throws(() => headersFromMetadata('[1]', 1), UsageError);
});

test('the CLI entry point reaches the tools without loading the HTTP server (decrypt works with no proxy code)', () => {
  // The static import closure of src/main.ts: dynamic import() is not followed, as node loads it only when run.
  const src = new URL('../../src/', import.meta.url).pathname;
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(join(src, file), 'utf8');
    // import … from, export … from, and bare `import './x.ts'` (type-only imports load nothing).
    for (const m of text.matchAll(/^(?:(?:import|export)\s+(?!type\b)[^;]*?from\s+|import\s+)'(\.{1,2}\/[^']+)'/gm)) {
      visit(join(file, '..', m[1]!).replace(/^\.\//, ''));
    }
  };
  visit('main.ts');
  assert.ok(seen.has('tools/decrypt.ts') || seen.has('tools/index.ts'), 'the walk follows imports');
  for (const server of ['server.ts', 'pipeline.ts', 'handlers/get.ts']) assert.ok(!seen.has(server), `main.ts loads ${server} at start`);
});

test('listing pages: anything but a whole ListBucketResult fails the walk rather than ending it as complete', () => {
  const entry = '<Contents><Key>a</Key><ETag>"e"</ETag><Size>3</Size></Contents>';
  const page = (body: string) => Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${body}</ListBucketResult>`);
  const last = listingPage(page(`<IsTruncated>false</IsTruncated>${entry}`), 'b');
  assert.deepEqual(last, { entries: [{ key: 'a', etag: '"e"', size: 3 }], token: undefined });
  assert.equal(listingPage(page(`<IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken>${entry}`), 'b').token, 't');
  // A 200 carrying another document (a proxy's error page, an S3 error) and pages cut short.
  assert.throws(() => listingPage(Buffer.from('<?xml version="1.0"?><Error><Code>InternalError</Code></Error>'), 'b'), /not a whole ListBucketResult/);
  assert.throws(() => listingPage(Buffer.from('<html><body>gateway</body></html>'), 'b'), /not a whole ListBucketResult/);
  const whole = page(`<IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken>${entry}${entry}`);
  for (const cut of [whole.indexOf('</Contents>') + 11, whole.length - 5]) assert.throws(() => listingPage(whole.subarray(0, cut), 'b'), /not a whole ListBucketResult|truncated/);
});

test('encrypt-existing part size: never more than 10,000 parts, whole chunks', () => {
  const MiB = 1024 * 1024;
  const chunk = 64 * 1024;
  assert.equal(partSizeFor(100 * MiB, 64 * MiB, chunk), 64 * MiB);
  // 1 TiB in 64 MiB parts would be 16,384 parts: the part grows to fit 10,000.
  const tib = 1024 ** 4;
  const part = partSizeFor(tib, 64 * MiB, chunk);
  assert.ok(Math.ceil(tib / part) <= 10_000, String(part));
  assert.equal(part % chunk, 0);
  assert.ok(part - Math.ceil(tib / 10_000) < chunk);
  // 5 TiB, S3's largest object, in 5 MiB parts.
  assert.ok(Math.ceil(5 * tib / partSizeFor(5 * tib, 5 * MiB, chunk)) <= 10_000);
  // A --part-size that is not whole chunks is rounded up.
  assert.equal(partSizeFor(20 * MiB, 5 * MiB + 1, chunk), 5 * MiB + chunk);
});

test("a HEAD 400 is the store's own SSE-C only when the store's error says so; any other 400 fails the object", async () => {
  let error = { code: 'InvalidRequest', message: 'The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.' };
  const store = createServer((req, res) => {
    req.resume();
    res.writeHead(400, { 'content-type': 'application/xml' });
    res.end(req.method === 'HEAD' ? undefined : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${error.code}</Code><Message>${error.message}</Message></Error>`);
  });
  await new Promise<void>((r) => store.listen(0, '127.0.0.1', r));
  const port = (store.address() as { port: number }).port;
  const session = openSession(undefined, { SSEC_PROXY_UPSTREAM_URL: `http://127.0.0.1:${port}`, SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'a', SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: 'b' });
  const run = { session, bucket: 'b' } as unknown as BulkRun;
  const listed = { key: 'k', etag: '"e"', size: 1 };
  try {
    assert.equal(await storeSsecOr400(run, listed), 'store-sse-c');
    error = { code: 'InvalidArgument', message: 'Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.' };
    assert.equal(await storeSsecOr400(run, listed), 'store-sse-c', "RGW's answer");
    error = { code: 'InvalidArgument', message: 'Invalid argument.' };
    await assert.rejects(storeSsecOr400(run, listed), /HTTP 400 \(the store's error: InvalidArgument\)/);
  } finally {
    store.close();
    await session.ctx.upstream.close();
  }
});
