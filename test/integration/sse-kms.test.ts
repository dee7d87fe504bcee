/**
 * SSE-S3 and SSE-KMS through the proxy over Ceph RGW with real clients and no key of their own: aws-cli's
 * `s3 cp --sse AES256` and `--sse aws:kms --sse-kms-key-id` (multipart at its 8 MiB threshold), and boto3's
 * put_object / get_object. What RGW stores is ciphertext (read directly, past the proxy); RGW, which has no KMS,
 * would refuse the SSE headers were they forwarded. `aws s3 sync` (aws-cli 2.9 and 1.45) into a bucket whose policy
 * is SSE-S3 and which is declared encrypted-only, again through a replica that has seen nothing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { rgwUpstream, storedBytes, startTestProxy, type TestProxy, type UpstreamInfo } from '../support/proxy.ts';

const MiB = 1024 * 1024;
const AWS = '/usr/bin/aws';
const PY = '/usr/bin/python3';
let up: UpstreamInfo;
let t: TestProxy;
let dir: string;
const bucket = `ssekms-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const defaultBucket = `${bucket}-d`;
/** SSE-S3 by the bucket's policy, and declared encrypted-only (listings take sizes from stored sizes). */
const syncBucket = `${bucket}-s3`;
const PYENV = process.env.PYENV_ROOT ?? join(homedir(), '.pyenv');
/** The machine image's aws-cli 1.45: current botocore, whose uploads send CRC32 checksums as aws-chunked trailers. */
const AWS_NEW = join(PYENV, 'shims', 'aws');
let proxyEnv: Record<string, string>;
const marker = randomBytes(32);
let data: Buffer;

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        cwd: dir,
        env: {
          PATH: `${join(PYENV, 'shims')}:/usr/bin:/bin`,
          HOME: dir,
          PYENV_ROOT: PYENV,
          AWS_ACCESS_KEY_ID: up.accessKeyId,
          AWS_SECRET_ACCESS_KEY: up.secretAccessKey,
          AWS_DEFAULT_REGION: up.region,
          AWS_CA_BUNDLE: t.caPath,
          AWS_EC2_METADATA_DISABLED: 'true',
          AWS_PAGER: '',
        },
        maxBuffer: 20 * MiB,
        timeout: 300_000,
      },
      (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}\n${stdout}\n${stderr}`)) : resolve(stdout)),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** The object's bytes as RGW keeps them, read past the proxy. */
async function atRest(Bucket: string, Key: string): Promise<Buffer> {
  return storedBytes(up, Bucket, Key);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

before(async () => {
  up = await rgwUpstream();
  dir = mkdtempSync(join(tmpdir(), 'ssec-kms-it-'));
  const keys = join(dir, 'kms-keys.json');
  writeFileSync(keys, JSON.stringify({ 'site-key': randomBytes(32).toString('base64'), 'team-key': randomBytes(32).toString('base64') }));
  proxyEnv = {
    SSEC_PROXY_KMS_LOCAL_KEYS: keys,
    SSEC_PROXY_BUCKET_ENCRYPTION: JSON.stringify({ [defaultBucket]: 'sse-kms:team-key', [syncBucket]: 'sse-s3' }),
    SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS: JSON.stringify([syncBucket]),
  };
  t = await startTestProxy(up, proxyEnv);
  for (const b of [bucket, defaultBucket, syncBucket]) await t.client().send(new CreateBucketCommand({ Bucket: b }));
  data = randomBytes(20 * MiB + 5);
  marker.copy(data, 8 * MiB + 3);
  writeFileSync(join(dir, 'up.bin'), data);
});
after(async () => t?.close());

describe('aws-cli (Debian) s3 cp with no key', () => {
  for (const [label, sseArgs, expected] of [
    ['--sse AES256', ['--sse', 'AES256'], { ServerSideEncryption: 'AES256' }],
    ['--sse aws:kms --sse-kms-key-id team-key', ['--sse', 'aws:kms', '--sse-kms-key-id', 'team-key'], { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'team-key' }],
  ] as const) {
    test(label, async () => {
      const name = `cli/${label.replace(/\W+/g, '-')}.bin`;
      await run(AWS, ['--endpoint-url', t.endpoint, 's3', 'cp', 'up.bin', `s3://${bucket}/${name}`, ...sseArgs]);
      const head = await t.client().send(new HeadObjectCommand({ Bucket: bucket, Key: name }));
      assert.equal(head.ContentLength, data.length);
      assert.match(head.ETag ?? '', /-\d+"$/, 'uploaded in parts');
      for (const [k, v] of Object.entries(expected)) assert.equal(head[k as keyof typeof head], v);
      const out = `down-${label.replace(/\W+/g, '-')}.bin`;
      await run(AWS, ['--endpoint-url', t.endpoint, 's3', 'cp', `s3://${bucket}/${name}`, out]);
      assert.equal(sha(readFileSync(join(dir, out))), sha(data));
      const stored = await atRest(bucket, name);
      assert.ok(stored.length > data.length);
      assert.equal(stored.indexOf(marker), -1, 'RGW holds ciphertext');
    });
  }

  test('a bucket with an sse-kms default: a plain cp is encrypted; GetBucketEncryption says so', async () => {
    await run(AWS, ['--endpoint-url', t.endpoint, 's3', 'cp', 'up.bin', `s3://${defaultBucket}/default.bin`]);
    const stored = await atRest(defaultBucket, 'default.bin');
    assert.equal(stored.indexOf(marker), -1);
    const enc = JSON.parse(await run(AWS, ['--endpoint-url', t.endpoint, 's3api', 'get-bucket-encryption', '--bucket', defaultBucket])) as {
      ServerSideEncryptionConfiguration: { Rules: Array<{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: string; KMSMasterKeyID: string } }> };
    };
    assert.deepEqual(enc.ServerSideEncryptionConfiguration.Rules[0]!.ApplyServerSideEncryptionByDefault, { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: 'team-key' });
  });
});

describe('boto3 (Debian)', () => {
  test('put_object with SSE-KMS, get_object and a range with no key', async () => {
    const script = `
import sys, json, boto3
from botocore.config import Config
s3 = boto3.client('s3', endpoint_url=sys.argv[1], config=Config(s3={'addressing_style': 'path'}))
body = open('up.bin', 'rb').read()[:100000]
put = s3.put_object(Bucket=sys.argv[2], Key='boto.bin', Body=body, ServerSideEncryption='aws:kms', SSEKMSKeyId='site-key')
got = s3.get_object(Bucket=sys.argv[2], Key='boto.bin')
rng = s3.get_object(Bucket=sys.argv[2], Key='boto.bin', Range='bytes=70000-70099')['Body'].read()
print(json.dumps({'put': [put['ServerSideEncryption'], put.get('SSEKMSKeyId')], 'get': [got['ServerSideEncryption'], got.get('SSEKMSKeyId')],
  'same': got['Body'].read() == body, 'range': rng == body[70000:70100]}))
`;
    const out = JSON.parse(await run(PY, ['-', t.endpoint, bucket], script)) as Record<string, unknown>;
    assert.deepEqual(out, { put: ['aws:kms', 'site-key'], get: ['aws:kms', 'site-key'], same: true, range: true });
    assert.ok((await atRest(bucket, 'boto.bin')).length > 100000);
  });
});

describe('a bucket whose policy is SSE-S3, declared encrypted-only: aws s3 sync with no option at all', () => {
  for (const [label, aws] of [
    ['aws-cli 2.9 (Debian)', AWS],
    ['aws-cli 1.45 (aws-chunked trailers)', AWS_NEW],
  ] as const) {
    test(`${label}: stored encrypted; a second sync through a replica that has seen nothing uploads nothing; sync back`, async () => {
      const prefix = label.replace(/\W+/g, '-');
      const src = mkdtempSync(join(dir, 'tree-'));
      mkdirSync(join(src, 'sub'));
      const files: Record<string, Buffer> = { 'a.txt': randomBytes(10), 'b.bin': randomBytes(70_000), 'sub/c.bin': randomBytes(9 * MiB + 7), empty: Buffer.alloc(0) };
      for (const [name, bytes] of Object.entries(files)) {
        if (bytes.length > 100) marker.copy(bytes, 50);
        writeFileSync(join(src, name), bytes);
      }
      const sync = (endpoint: string, from: string, to: string) => run(aws, ['--endpoint-url', endpoint, 's3', 'sync', from, to]);
      const first = await sync(t.endpoint, src, `s3://${syncBucket}/${prefix}`);
      assert.equal((first.match(/upload:/g) ?? []).length, 4, first);
      for (const [name, bytes] of Object.entries(files)) {
        const head = await t.client().send(new HeadObjectCommand({ Bucket: syncBucket, Key: `${prefix}/${name}` }));
        assert.equal(head.ServerSideEncryption, 'AES256', name);
        assert.equal(head.ContentLength, bytes.length, name);
        const stored = await atRest(syncBucket, `${prefix}/${name}`);
        assert.ok(stored.length > bytes.length, name);
        assert.equal(stored.indexOf(marker), -1, `${name}: RGW holds ciphertext`);
      }
      // A replica that has never seen these objects lists them with no HEAD: the sizes must be exact, or sync
      // would upload again every object it thinks changed.
      const fresh = await startTestProxy(up, proxyEnv);
      try {
        const second = await sync(fresh.endpoint, src, `s3://${syncBucket}/${prefix}`);
        assert.equal((second.match(/upload:/g) ?? []).length, 0, second);
        const down = mkdtempSync(join(dir, 'down-'));
        await sync(fresh.endpoint, `s3://${syncBucket}/${prefix}`, down);
        for (const [name, bytes] of Object.entries(files)) assert.equal(sha(readFileSync(join(down, name))), sha(bytes), name);
      } finally {
        await fresh.close();
      }
    });
  }
});
