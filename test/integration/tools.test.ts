/**
 * The operator's tools (`inventory`, `encrypt-existing`, `rotate`, `decrypt`) as the bin runs them, straight
 * against RGW with no proxy: a mixed bucket (plain, SSE-C, SSE-S3 with the local KMS, a multipart plain
 * object) round-tripped, a run killed mid-way and resumed, a concurrent writer never overwritten, a tampered
 * object refused with no output file; and the results read back through the proxy as clients see them.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { runToolCli, type ToolRun } from '../support/cli.ts';
import { bodyBytes, directClient, rgwUpstream, sse, startTestProxy, type SseKey, type TestProxy, type UpstreamInfo } from '../support/proxy.ts';

const MiB = 1024 * 1024;
const bucket = `tools-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
let up: UpstreamInfo;
let t: TestProxy;
let direct: S3Client;
let viaProxy: S3Client;
let dir: string;
let env: Record<string, string>;
const keyA = key();
const keyB = key();
let keyAFile: string;
let keyBFile: string;

function key(): SseKey {
  const raw = randomBytes(32);
  return { raw, b64: raw.toString('base64'), md5: createHash('md5').update(raw).digest('base64') };
}

/** The original bytes of every object, by key. */
const originals = new Map<string, Buffer>();

/** A tool run; whatever it prints never holds a key (in any encoding). */
async function tool(args: string[], extraEnv: Record<string, string> = {}, onEvent?: Parameters<typeof runToolCli>[3]): Promise<ToolRun> {
  const run = await runToolCli(up, args, { ...env, ...extraEnv }, onEvent);
  const printed = run.stdout + run.stderr;
  for (const k of [keyA, keyB]) for (const form of [k.b64, k.raw.toString('hex'), k.raw.toString('latin1')]) assert.ok(!printed.includes(form), 'a key was printed');
  return run;
}

function summaryOf(run: ToolRun): { outcomes: Record<string, { objects: number }> } & Record<string, unknown> {
  const s = run.events.find((e) => e.event === 'summary');
  assert.ok(s, `no summary in:\n${run.stderr}`);
  return s as never;
}

function count(run: ToolRun, outcome: string): number {
  return summaryOf(run).outcomes[outcome]?.objects ?? 0;
}

async function inventory(prefix: string): Promise<{ modes: Record<string, { objects: number; bytes: number }>; kmsKeys: Record<string, { objects: number }>; objects: number }> {
  const run = await tool(['inventory', '--bucket', bucket, '--prefix', prefix, '--json']);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout);
}

async function putPlain(k: string, body: Buffer, extra: Partial<ConstructorParameters<typeof PutObjectCommand>[0]> = {}) {
  await direct.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: body, ...extra }));
  originals.set(k, body);
}

/** A plain multipart object written straight to the store (parts of 5 MiB and the rest). */
async function putPlainMultipart(k: string, body: Buffer) {
  const { UploadId } = await direct.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: k, ContentType: 'application/x-big' }));
  const parts = [];
  for (let i = 0, n = 1; i < body.length; i += 5 * MiB, n++) {
    const { ETag } = await direct.send(new UploadPartCommand({ Bucket: bucket, Key: k, UploadId, PartNumber: n, Body: body.subarray(i, i + 5 * MiB) }));
    parts.push({ ETag, PartNumber: n });
  }
  await direct.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: k, UploadId, MultipartUpload: { Parts: parts } }));
  originals.set(k, body);
}

async function atRest(k: string) {
  const got = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: k }));
  return { body: await bodyBytes(got.Body), metadata: got.Metadata ?? {}, contentType: got.ContentType, etag: got.ETag };
}

before(async () => {
  up = await rgwUpstream();
  dir = mkdtempSync(join(tmpdir(), 'ssec-tools-'));
  const kmsKeys = join(dir, 'kms-keys.json');
  writeFileSync(kmsKeys, JSON.stringify({ 'tools-master': randomBytes(32).toString('base64') }), { mode: 0o600 });
  env = { SSEC_PROXY_KMS_LOCAL_KEYS: kmsKeys };
  keyAFile = join(dir, 'a.key');
  keyBFile = join(dir, 'b.key');
  writeFileSync(keyAFile, keyA.raw, { mode: 0o600 }); // raw bytes, as aws-cli's fileb://
  writeFileSync(keyBFile, keyB.b64 + '\n', { mode: 0o600 }); // base64, as keygen prints it
  t = await startTestProxy(up, env);
  direct = directClient(up);
  viaProxy = t.client();
  await direct.send(new CreateBucketCommand({ Bucket: bucket }));
});

after(async () => {
  direct?.destroy();
  await t?.close();
});

describe('a mixed bucket round trip', () => {
  before(async () => {
    await putPlain('mixed/small.txt', randomBytes(150 * 1024), { ContentType: 'text/plain', Metadata: { owner: 'ops' }, Tagging: 'team=storage&tier=gold' });
    await putPlain('mixed/empty', Buffer.alloc(0));
    await putPlain('mixed/a b+c/ü ?&.txt', randomBytes(1000)); // a key that needs escaping everywhere
    await putPlainMultipart('mixed/big.bin', randomBytes(11 * MiB + 12345));
    const ssec = randomBytes(100 * 1024);
    await viaProxy.send(new PutObjectCommand({ Bucket: bucket, Key: 'mixed/ssec.bin', Body: ssec, ...sse(keyA) }));
    originals.set('mixed/ssec.bin', ssec);
    const sses3 = randomBytes(200 * 1024);
    await viaProxy.send(new PutObjectCommand({ Bucket: bucket, Key: 'mixed/sses3.bin', Body: sses3, ServerSideEncryption: 'AES256' }));
    originals.set('mixed/sses3.bin', sses3);
    // SSE-C by the store itself, written past the proxy: neither readable nor rewritable without its key.
    await direct.send(new PutObjectCommand({ Bucket: bucket, Key: 'mixed/store-ssec', Body: randomBytes(5000), ...sse(keyA) }));
  });

  test('inventory counts each mode; encrypt-existing --dry-run changes nothing', async () => {
    const inv = await inventory('mixed/');
    assert.equal(inv.objects, 7);
    assert.deepEqual(
      Object.fromEntries(Object.entries(inv.modes).map(([m, c]) => [m, c.objects])),
      { plain: 4, 'sse-c': 1, 'sse-s3': 1, 'sse-kms': 0, invalid: 0, 'store-sse-c': 1 },
    );
    assert.equal(inv.modes.plain!.bytes, 150 * 1024 + 1000 + 11 * MiB + 12345);
    assert.equal(inv.kmsKeys['tools-master']?.objects, 1);

    const dry = await tool(['encrypt-existing', '--bucket', bucket, '--prefix', 'mixed/', '--sse-c-key-file', keyAFile, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(count(dry, 'would-encrypt'), 4);
    assert.equal((await inventory('mixed/')).modes.plain!.objects, 4);
    assert.deepEqual((await atRest('mixed/small.txt')).body, originals.get('mixed/small.txt'));
  });

  test('encrypt-existing encrypts every plaintext object in place, keeping its headers, metadata and tags', async () => {
    const run = await tool(['encrypt-existing', '--bucket', bucket, '--prefix', 'mixed/', '--sse-c-key-file', keyAFile, '--part-size', '5MiB']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(count(run, 'encrypted'), 4);
    assert.equal(count(run, 'already-encrypted'), 2);
    assert.equal(count(run, 'store-sse-c'), 1);
    const inv = await inventory('mixed/');
    assert.equal(inv.modes.plain!.objects, 0);
    assert.equal(inv.modes['sse-c']!.objects, 5);
    assert.equal(inv.modes['sse-s3']!.objects, 1);

    // What the store holds is ciphertext, with the object's own description kept.
    const small = await atRest('mixed/small.txt');
    assert.notDeepEqual(small.body.subarray(0, 4096), originals.get('mixed/small.txt')!.subarray(0, 4096));
    assert.equal(small.contentType, 'text/plain');
    assert.equal(small.metadata.owner, 'ops');
    const tags = await direct.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'mixed/small.txt' }));
    assert.deepEqual(tags.TagSet?.map((x) => `${x.Key}=${x.Value}`).sort(), ['team=storage', 'tier=gold']);
    assert.equal((await atRest('mixed/big.bin')).contentType, 'application/x-big');

    // Run again (no state file): nothing is plaintext any more, nothing is touched.
    const again = await tool(['encrypt-existing', '--bucket', bucket, '--prefix', 'mixed/', '--sse-c-key-file', keyAFile]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(count(again, 'already-encrypted'), 6);
    assert.equal(count(again, 'encrypted'), 0);
  });

  test('rotate re-seals SSE-C objects under the new key and SSE-S3 keys under the KMS, moving no bytes', async () => {
    const before = await atRest('mixed/big.bin');
    // Above the copy threshold (here 5 MiB) the store copies in parts, as CopyObject does above 5 GiB.
    const run = await tool(['rotate', '--bucket', bucket, '--prefix', 'mixed/', '--old-sse-c-key-file', keyAFile, '--new-sse-c-key-file', keyBFile], {
      SSEC_PROXY_COPY_MULTIPART_THRESHOLD: String(5 * MiB),
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(count(run, 'rotated'), 5);
    assert.equal(count(run, 'not-sse-c'), 1);
    const after = await atRest('mixed/big.bin');
    assert.deepEqual(after.body, before.body, 'the ciphertext is the same bytes');
    assert.match(after.etag ?? '', /-2"$/, 'copied in two parts');
    assert.notEqual(after.metadata['s3-ssec-proxy'], before.metadata['s3-ssec-proxy'], 'the envelope is new');
    // Tags survive the copy onto itself (RGW drops them there: the tool puts them back).
    const tags = await direct.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'mixed/small.txt' }));
    assert.deepEqual(tags.TagSet?.map((x) => `${x.Key}=${x.Value}`).sort(), ['team=storage', 'tier=gold']);
    assert.equal((await atRest('mixed/small.txt')).contentType, 'text/plain');

    const again = await tool(['rotate', '--bucket', bucket, '--prefix', 'mixed/', '--old-sse-c-key-file', keyAFile, '--new-sse-c-key-file', keyBFile]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(count(again, 'already-rotated'), 5);

    const kmsBefore = (await atRest('mixed/sses3.bin')).metadata['s3-ssec-proxy-kms'];
    const kms = await tool(['rotate', '--bucket', bucket, '--prefix', 'mixed/', '--kms']);
    assert.equal(kms.code, 0, kms.stderr);
    assert.equal(count(kms, 'rotated'), 1);
    assert.equal(count(kms, 'not-kms'), 5);
    assert.notEqual((await atRest('mixed/sses3.bin')).metadata['s3-ssec-proxy-kms'], kmsBefore);
  });

  test('decrypt reads every object back from the store, with no proxy, equal to the original bytes', async () => {
    for (const [k, original] of originals) {
      if (!k.startsWith('mixed/')) continue;
      const out = join(dir, `out-${k.replace(/\W/g, '_')}`);
      const keyArgs = k === 'mixed/sses3.bin' ? [] : ['--sse-c-key-file', keyBFile];
      const run = await tool(['decrypt', '--bucket', bucket, '--key', k, ...keyArgs, '--out', out]);
      assert.equal(run.code, 0, `${k}: ${run.stderr}`);
      assert.deepEqual(readFileSync(out), original, k);
    }
    // The old key no longer opens them.
    const wrong = await tool(['decrypt', '--bucket', bucket, '--key', 'mixed/small.txt', '--sse-c-key-file', keyAFile, '--out', join(dir, 'wrong')]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /not the one this object was encrypted with/);
    assert.equal(existsSync(join(dir, 'wrong')), false);
  });

  test('decrypt works offline from a downloaded ciphertext and its metadata (aws-cli head-object JSON)', async () => {
    for (const k of ['mixed/big.bin', 'mixed/small.txt', 'mixed/sses3.bin']) {
      const stored = await atRest(k);
      const head = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: k }));
      const cipher = join(dir, 'cipher.bin');
      const meta = join(dir, 'cipher.json');
      writeFileSync(cipher, stored.body);
      writeFileSync(meta, JSON.stringify({ ETag: head.ETag, ContentLength: head.ContentLength, Metadata: head.Metadata }));
      const out = join(dir, `offline-${k.replace(/\W/g, '_')}.out`);
      const keyArgs = k === 'mixed/sses3.bin' ? [] : ['--sse-c-key-file', keyBFile];
      // No upstream configured at all: only the file, its metadata and the key (and the KMS for SSE-S3).
      const run = await runToolCli(undefined, ['decrypt', '--in', cipher, '--metadata', meta, '--bucket', bucket, '--key', k, ...keyArgs, '--out', out], env);
      assert.equal(run.code, 0, `${k}: ${run.stderr}`);
      assert.deepEqual(readFileSync(out), originals.get(k), k);
    }
  });

  test('clients see the same objects through the proxy', async () => {
    for (const [k, original] of originals) {
      if (!k.startsWith('mixed/')) continue;
      const params = k === 'mixed/sses3.bin' ? {} : sse(keyB);
      const got = await viaProxy.send(new GetObjectCommand({ Bucket: bucket, Key: k, ...params }));
      assert.deepEqual(await bodyBytes(got.Body), original, k);
      if (k === 'mixed/small.txt') {
        assert.equal(got.ContentType, 'text/plain');
        assert.equal(got.Metadata?.owner, 'ops');
      }
    }
    await assert.rejects(viaProxy.send(new GetObjectCommand({ Bucket: bucket, Key: 'mixed/small.txt', ...sse(keyA) })), (e: Error & { $metadata?: { httpStatusCode?: number } }) => {
      assert.equal(e.$metadata?.httpStatusCode, 403);
      return true;
    });
  });
});

describe('decrypt of a tampered object', () => {
  const k = 'tamper/x.bin';
  before(async () => {
    const body = randomBytes(300 * 1024); // several chunks: plaintext would be written before the bad one
    await viaProxy.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: body, ...sse(keyA) }));
    const stored = await atRest(k);
    const bad = Buffer.from(stored.body);
    bad[bad.length - 100]! ^= 1;
    await direct.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: bad, Metadata: stored.metadata }));
  });

  test('fails with an error and leaves no --out file, not even a partial one', async () => {
    const outDir = mkdtempSync(join(dir, 'tamper-'));
    const out = join(outDir, 'x.out');
    const run = await tool(['decrypt', '--bucket', bucket, '--key', k, '--sse-c-key-file', keyAFile, '--out', out]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /decrypt: /);
    assert.deepEqual(readdirSync(outDir), []);
  });
});

describe('decrypt and its --out file', () => {
  const k = 'out/x.bin';
  const body = randomBytes(300 * 1024); // several chunks
  before(async () => {
    await viaProxy.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: body, ...sse(keyA) }));
  });

  test('an existing --out (say, the key file) is refused and kept; --force replaces it', async () => {
    const outDir = mkdtempSync(join(dir, 'exists-'));
    const out = join(outDir, 'key.bin');
    writeFileSync(out, keyA.raw);
    const run = await tool(['decrypt', '--bucket', bucket, '--key', k, '--sse-c-key-file', keyAFile, '--out', out]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /exists/);
    assert.deepEqual(readFileSync(out), keyA.raw);
    const forced = await tool(['decrypt', '--bucket', bucket, '--key', k, '--sse-c-key-file', keyAFile, '--out', out, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(readFileSync(out), body);
    assert.deepEqual(readdirSync(outDir), ['key.bin']);
  });

  test('SIGINT mid-way leaves no partial plaintext behind', async () => {
    const outDir = mkdtempSync(join(dir, 'sigint-out-'));
    const out = join(outDir, 'x.out');
    let partial: string[] = [];
    const run = await tool(['decrypt', '--bucket', bucket, '--key', k, '--sse-c-key-file', keyAFile, '--out', out], { SSEC_TOOLS_TEST_PAUSE_DECRYPT: '1' }, (e, child) => {
      if (e.event === 'note' && e.paused === true) {
        partial = readdirSync(outDir);
        child.kill('SIGINT');
      }
    });
    assert.equal(partial.length, 1, 'the temporary file existed while paused');
    assert.equal(run.code, 130, run.stderr);
    assert.deepEqual(readdirSync(outDir), []);
  });
});

describe('an interrupted encrypt-existing, resumed', () => {
  const n = 24;
  before(async () => {
    for (let i = 0; i < n; i++) await putPlain(`many/${String(i).padStart(3, '0')}`, randomBytes(32 * 1024 + i));
  });

  test('a run killed mid-way and re-run with its --state file does only what is left', async () => {
    const state = join(dir, 'many.state');
    let encrypted = 0;
    const killed = await tool(['encrypt-existing', '--bucket', bucket, '--prefix', 'many/', '--sse-s3', '--concurrency', '1', '--state', state], {}, (e, child) => {
      if (e.event === 'object' && e.outcome === 'encrypted' && ++encrypted === 5) child.kill('SIGKILL');
    });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    const recorded = readFileSync(state, 'utf8').split('\n').filter((l) => l.trim()).length - 1; // the header
    assert.ok(recorded >= 5 && recorded < n, `recorded ${recorded}`);
    const midway = await inventory('many/');
    assert.ok(midway.modes.plain!.objects > 0, 'the killed run stopped before the end');

    const resumed = await tool(['encrypt-existing', '--bucket', bucket, '--prefix', 'many/', '--sse-s3', '--concurrency', '3', '--state', state]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(count(resumed, 'resumed'), recorded);
    // An object written just before the kill but not yet recorded is found encrypted, not written again.
    assert.equal(count(resumed, 'encrypted') + count(resumed, 'already-encrypted'), n - recorded);
    assert.ok(count(resumed, 'already-encrypted') <= 1);
    const inv = await inventory('many/');
    assert.equal(inv.modes.plain!.objects, 0);
    assert.equal(inv.modes['sse-s3']!.objects, n);

    for (const [k, original] of originals) {
      if (!k.startsWith('many/')) continue;
      const got = await viaProxy.send(new GetObjectCommand({ Bucket: bucket, Key: k }));
      assert.deepEqual(await bodyBytes(got.Body), original, k);
      assert.equal(got.ServerSideEncryption, 'AES256');
    }
  });
});

describe('an encrypt-existing stopped by SIGINT', () => {
  test('finishes the object in progress, records it, starts no other, and exits 130', async () => {
    for (let i = 0; i < 5; i++) await putPlain(`sigint/${i}`, randomBytes(10 * 1024));
    const state = join(dir, 'sigint.state');
    const run = await tool(
      ['encrypt-existing', '--bucket', bucket, '--prefix', 'sigint/', '--sse-c-key-file', keyAFile, '--concurrency', '1', '--state', state],
      { SSEC_TOOLS_TEST_PAUSE_BEFORE_WRITE: 'sigint/1' },
      (e, child) => {
        if (e.event === 'note' && e.paused === 'sigint/1') child.kill('SIGINT');
        if (e.event === 'note' && e.signal === 'SIGINT') child.kill('SIGUSR2');
      },
    );
    assert.equal(run.code, 130, run.stderr);
    assert.equal(summaryOf(run).interrupted, true);
    assert.equal(count(run, 'encrypted'), 2);
    assert.equal(readFileSync(state, 'utf8').trim().split('\n').length, 3); // the header and the two
    const inv = await inventory('sigint/');
    assert.equal(inv.modes['sse-c']!.objects, 2);
    assert.equal(inv.modes.plain!.objects, 3);

    // The same file given to a run under another key is refused (exit 2), not taken as two objects done.
    const other = await tool(['encrypt-existing', '--bucket', bucket, '--prefix', 'sigint/', '--sse-c-key-file', keyBFile, '--state', state]);
    assert.equal(other.code, 2, other.stderr);
    assert.match(other.stderr, /another target/);
    assert.equal((await inventory('sigint/')).modes.plain!.objects, 3);
  });
});

describe('a concurrent writer during encrypt-existing', () => {
  /** Runs encrypt-existing on `prefix`, pausing before it replaces `k`, and overwrites `k` meanwhile. */
  async function race(prefix: string, k: string, args: string[] = []) {
    const fresh = randomBytes(4096);
    let wrote: Promise<unknown> | undefined;
    const run = await tool(['encrypt-existing', '--bucket', bucket, '--prefix', prefix, '--sse-c-key-file', keyAFile, ...args], { SSEC_TOOLS_TEST_PAUSE_BEFORE_WRITE: k }, (e, child) => {
      if (e.event === 'note' && e.paused === k) {
        wrote = direct.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: fresh, ContentType: 'text/x-fresh' })).then(() => child.kill('SIGUSR2'));
      }
    });
    assert.ok(wrote, `never paused:\n${run.stderr}`);
    await wrote;
    return { run, fresh };
  }

  test("a single PUT's replacement is conditional: the writer's object stays as written", async () => {
    await putPlain('race/one', randomBytes(100 * 1024));
    const { run, fresh } = await race('race/', 'race/one');
    assert.equal(run.code, 3, run.stderr);
    assert.equal(count(run, 'changed'), 1);
    const now = await atRest('race/one');
    assert.deepEqual(now.body, fresh);
    assert.equal(now.contentType, 'text/x-fresh');
    assert.equal(now.metadata['s3-ssec-proxy'], undefined);
  });

  test('a multipart replacement is checked before it completes, and its upload aborted', async () => {
    await putPlainMultipart('race-mp/big', randomBytes(6 * MiB));
    const { run, fresh } = await race('race-mp/', 'race-mp/big', ['--part-size', '5MiB']);
    assert.equal(run.code, 3, run.stderr);
    assert.equal(count(run, 'changed'), 1);
    assert.deepEqual((await atRest('race-mp/big')).body, fresh);
    const uploads = await direct.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'race-mp/' }));
    assert.equal(uploads.Uploads?.length ?? 0, 0);
  });
});

describe('a concurrent writer during rotate', () => {
  test('a copy in parts is checked right before its Complete: the writer keeps its object, the upload is aborted', async () => {
    const k = 'race-rot/big';
    await viaProxy.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: randomBytes(6 * MiB), ...sse(keyA) }));
    const fresh = randomBytes(4096);
    let wrote: Promise<unknown> | undefined;
    const run = await tool(
      ['rotate', '--bucket', bucket, '--prefix', 'race-rot/', '--old-sse-c-key-file', keyAFile, '--new-sse-c-key-file', keyBFile],
      // Copied in parts (above 5 MiB), paused once the parts are copied.
      { SSEC_TOOLS_TEST_PAUSE_BEFORE_WRITE: k, SSEC_PROXY_COPY_MULTIPART_THRESHOLD: String(5 * MiB) },
      (e, child) => {
        if (e.event === 'note' && e.paused === k) wrote = direct.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: fresh })).then(() => child.kill('SIGUSR2'));
      },
    );
    assert.ok(wrote, `never paused:\n${run.stderr}`);
    await wrote;
    assert.equal(run.code, 3, run.stderr);
    assert.equal(count(run, 'changed'), 1);
    assert.deepEqual((await atRest(k)).body, fresh);
    const uploads = await direct.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'race-rot/' }));
    assert.equal(uploads.Uploads?.length ?? 0, 0);
  });
});

describe('a versioned bucket', () => {
  const vbucket = `${bucket}-v`;
  const k = 'doc.txt';
  const original = randomBytes(70 * 1024);

  test('encrypt-existing and rotate add versions and keep the old ones; decrypt reads a named version', async () => {
    await direct.send(new CreateBucketCommand({ Bucket: vbucket }));
    await direct.send(new PutBucketVersioningCommand({ Bucket: vbucket, VersioningConfiguration: { Status: 'Enabled' } }));
    const { VersionId: plainVersion } = await direct.send(new PutObjectCommand({ Bucket: vbucket, Key: k, Body: original }));
    const enc = await tool(['encrypt-existing', '--bucket', vbucket, '--sse-c-key-file', keyAFile]);
    assert.equal(enc.code, 0, enc.stderr);
    assert.equal(count(enc, 'encrypted'), 1);
    const rot = await tool(['rotate', '--bucket', vbucket, '--old-sse-c-key-file', keyAFile, '--new-sse-c-key-file', keyBFile]);
    assert.equal(rot.code, 0, rot.stderr);
    assert.equal(count(rot, 'rotated'), 1);

    const versions = (await direct.send(new ListObjectVersionsCommand({ Bucket: vbucket, Prefix: k }))).Versions ?? [];
    assert.equal(versions.length, 3, 'plaintext, encrypted under A, re-sealed under B');
    // The plaintext version is still there, as it was.
    const old = await direct.send(new GetObjectCommand({ Bucket: vbucket, Key: k, VersionId: plainVersion }));
    assert.deepEqual(await bodyBytes(old.Body), original);
    // The version encrypted under the old key still opens with it (older versions keep their key).
    const underA = versions.find((v) => !v.IsLatest && v.VersionId !== plainVersion)!;
    const out = join(dir, 'versioned.out');
    const run = await tool(['decrypt', '--bucket', vbucket, '--key', k, '--version-id', underA.VersionId!, '--sse-c-key-file', keyAFile, '--out', out]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(readFileSync(out), original);
    const latest = await viaProxy.send(new GetObjectCommand({ Bucket: vbucket, Key: k, ...sse(keyB) }));
    assert.deepEqual(await bodyBytes(latest.Body), original);
  });
});

test('encrypt-existing and rotate answer --help with their options; keys never come from argv', async () => {
  const enc = await tool(['encrypt-existing', '--help']);
  assert.equal(enc.code, 0);
  for (const o of ['--bucket', '--prefix', '--sse-c-key-file', '--sse-s3', '--sse-kms', '--dry-run', '--concurrency', '--state']) assert.ok(enc.stdout.includes(o), o);
  const rot = await tool(['rotate', '--help']);
  assert.equal(rot.code, 0);
  for (const o of ['--old-sse-c-key-file', '--new-sse-c-key-file', '--kms', '--dry-run', '--state']) assert.ok(rot.stdout.includes(o), o);
  const bad = await tool(['encrypt-existing', '--bucket', bucket, '--sse-c-key', keyA.b64]);
  assert.equal(bad.code, 2);
  // An unknown KMS key is found before any object is touched.
  const unknown = await tool(['encrypt-existing', '--bucket', bucket, '--sse-kms', 'no-such-key']);
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /"no-such-key" is unknown/);
  assert.equal(unknown.events.length, 0);
});
