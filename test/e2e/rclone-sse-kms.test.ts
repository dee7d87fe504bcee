/**
 * Debian's rclone with `--s3-server-side-encryption AES256` and `aws:kms` + `--s3-sse-kms-key-id`, through the
 * proxy over Ceph RGW with the `kmip` KMS on a real KMIP server (PyKMIP): single-part and multipart uploads,
 * downloads, a ranged read and a listing with the plaintext sizes, no key on the client; what RGW stores is
 * ciphertext (read directly, past the proxy).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { rgwUpstream, storedBytes, startTestProxy, type TestProxy, type UpstreamInfo } from '../support/proxy.ts';
import { startKmipServer, type KmipServer } from '../support/kmip.ts';
import { rcloneS3Env } from '../support/rclone.ts';

const MiB = 1024 * 1024;
const RCLONE = '/usr/bin/rclone';
let up: UpstreamInfo;
let kmip: KmipServer;
let t: TestProxy;
let dir: string;
const bucket = `rclone-kms-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
/** A bucket whose policy is SSE-S3: rclone sends no encryption option at all. */
const policyBucket = `${bucket}-sse-s3`;
const marker = randomBytes(32);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

before(async () => {
  up = await rgwUpstream();
  kmip = await startKmipServer();
  for (const k of ['site-key', 'team-key']) await kmip.createKey(k);
  t = await startTestProxy(up, { ...kmip.env('site-key'), SSEC_PROXY_BUCKET_ENCRYPTION: JSON.stringify({ [policyBucket]: 'sse-s3' }) });
  for (const Bucket of [bucket, policyBucket]) await t.client().send(new CreateBucketCommand({ Bucket }));
  dir = mkdtempSync(join(tmpdir(), 'ssec-rclone-kms-'));
});
after(async () => {
  await t?.close();
  await kmip?.close();
});

function rcloneWith(args: string[], options: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      RCLONE,
      [...args, '--ca-cert', t.caPath, ...options, '--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M'],
      {
        env: rcloneS3Env(t.endpoint, up, dir),
        maxBuffer: 64 * MiB,
        encoding: 'buffer',
        timeout: 300_000,
      },
      (err, stdout, stderr) => (err ? reject(new Error(`rclone ${args.join(' ')}\n${stderr.toString()}`)) : resolve(stdout.toString('latin1'))),
    );
  });
}

/** The object's bytes as RGW keeps them, read past the proxy. */
async function atRest(Key: string): Promise<Buffer> {
  return storedBytes(up, bucket, Key);
}

describe('rclone (Debian) with --s3-server-side-encryption, KMIP key manager', () => {
  // rclone checks every transfer against the ETag when it looks like an MD5 (SSE-S3 and plain ones do on AWS): the
  // proxy's ETags of encrypted objects do not (docs/CLIENTS.md, "ETags"), so it checks nothing it cannot.
  for (const [label, sse, read, expected] of [
    ['AES256', ['--s3-server-side-encryption', 'AES256'], [], { ServerSideEncryption: 'AES256', SSEKMSKeyId: undefined }],
    [
      'aws:kms --s3-sse-kms-key-id team-key',
      ['--s3-server-side-encryption', 'aws:kms', '--s3-sse-kms-key-id', 'team-key'],
      [],
      { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'team-key' },
    ],
  ] as const) {
    test(label, async () => {
      assert.ok(existsSync(RCLONE), "scripts/test.sh installs Debian's rclone");
      const prefix = `rclone/${label.replace(/\W+/g, '-')}`;
      const small = randomBytes(100_000);
      const large = randomBytes(12 * MiB + 3);
      marker.copy(small, 500);
      marker.copy(large, 6 * MiB + 1);
      writeFileSync(join(dir, 'small.bin'), small);
      writeFileSync(join(dir, 'large.bin'), large);
      await rcloneWith(['copyto', join(dir, 'small.bin'), `px:${bucket}/${prefix}/small.bin`], sse);
      await rcloneWith(['copyto', join(dir, 'large.bin'), `px:${bucket}/${prefix}/large.bin`], sse);
      for (const [name, body] of [['small.bin', small], ['large.bin', large]] as const) {
        const head = await t.client().send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/${name}` }));
        assert.equal(head.ContentLength, body.length);
        assert.equal(head.ServerSideEncryption, expected.ServerSideEncryption);
        assert.equal(head.SSEKMSKeyId, expected.SSEKMSKeyId);
        const stored = await atRest(`${prefix}/${name}`);
        assert.ok(stored.length > body.length, 'RGW holds the format overhead');
        assert.equal(stored.indexOf(marker), -1, 'RGW holds ciphertext');
      }
      assert.match((await t.client().send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/large.bin` }))).ETag ?? '', /-\d+"$/, 'uploaded in parts');
      // Reading needs no key nor encryption option.
      const rclone = (args: string[]) => rcloneWith(args, read);
      await rclone(['copyto', `px:${bucket}/${prefix}/large.bin`, join(dir, 'large.out')]);
      assert.equal(sha(readFileSync(join(dir, 'large.out'))), sha(large));
      await rclone(['copyto', `px:${bucket}/${prefix}/small.bin`, join(dir, 'small.out')]);
      assert.ok(readFileSync(join(dir, 'small.out')).equals(small));
      const part = Buffer.from(await rclone(['cat', '--offset', '6000000', '--count', '1000', `px:${bucket}/${prefix}/large.bin`]), 'latin1');
      assert.ok(part.equals(large.subarray(6_000_000, 6_001_000)));
      const list = JSON.parse(await rclone(['lsjson', `px:${bucket}/${prefix}`])) as Array<{ Path: string; Size: number }>;
      assert.deepEqual(Object.fromEntries(list.map((e) => [e.Path, e.Size])), { 'small.bin': small.length, 'large.bin': large.length });
    });
  }

  test('a bucket whose policy is SSE-S3, rclone with no option at all: copy up, check, sync again, copy down', async () => {
    const src = mkdtempSync(join(dir, 'tree-'));
    const files: Record<string, Buffer> = { 'a.bin': randomBytes(1000), 'sub/b.bin': randomBytes(300_000), 'big.bin': randomBytes(11 * MiB) };
    for (const [name, bytes] of Object.entries(files)) {
      marker.copy(bytes, 100);
      mkdirSync(join(src, name, '..'), { recursive: true });
      writeFileSync(join(src, name), bytes);
    }
    const rclone = (args: string[]) => rcloneWith(args, ['-v']);
    // Before ETags of encrypted objects were marked, this copy failed ("corrupted on transfer: md5 hash differ")
    // and rclone deleted what it had uploaded.
    await rclone(['copy', src, `px:${policyBucket}/tree`]);
    for (const [name, bytes] of Object.entries(files)) {
      const head = await t.client().send(new HeadObjectCommand({ Bucket: policyBucket, Key: `tree/${name}` }));
      assert.equal(head.ServerSideEncryption, 'AES256');
      assert.equal(head.ContentLength, bytes.length);
      assert.equal((await storedBytes(up, policyBucket, `tree/${name}`)).indexOf(marker), -1, 'RGW holds ciphertext');
    }
    await rclone(['check', src, `px:${policyBucket}/tree`]);
    const log = join(dir, 'sync.log');
    await rcloneWith(['sync', src, `px:${policyBucket}/tree`], ['-v', '--log-file', log]);
    assert.doesNotMatch(readFileSync(log, 'utf8'), /Copied \(/, 'nothing to transfer the second time');
    const out = mkdtempSync(join(dir, 'down-'));
    await rclone(['copy', `px:${policyBucket}/tree`, out]);
    for (const [name, bytes] of Object.entries(files)) assert.equal(sha(readFileSync(join(out, name))), sha(bytes), name);
  });
});
