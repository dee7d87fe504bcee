/**
 * Large files the way real clients move them, through the proxy over Ceph RGW, byte-identical:
 * aws-cli `s3 cp` of 100 MiB (multipart upload, parallel ranged download) with Debian's aws-cli 2.9 and with the
 * machine image's aws-cli 1.45 (current botocore: aws-chunked CRC32 trailers, If-Match on ranged GETs), boto3
 * upload_file/download_file with 5 MiB + 1 byte parts (unaligned), and `aws s3 sync` run twice.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import {
  directClient,
  rgwUpstream,
  sse,
  type SseKey,
  startTestProxy,
  type TestProxy,
  type UpstreamInfo,
} from '../support/proxy.ts';
import { createHash } from 'node:crypto';

const MiB = 1024 * 1024;
const AWS_DEB = '/usr/bin/aws';
const PYENV = process.env.PYENV_ROOT ?? join(homedir(), '.pyenv');
const AWS_NEW = join(PYENV, 'shims', 'aws');
const PY_NEW = join(PYENV, 'shims', 'python3');
const PY_DEB = '/usr/bin/python3';

let up: UpstreamInfo;
let t: TestProxy;
let dir: string;
let keyFile: string;
let key: SseKey;
const bucket = `cli-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const logsBefore = t.logs.length;
  return new Promise((resolve, reject) => {
    execFile(
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
          ...env,
        },
        maxBuffer: 20 * MiB,
        timeout: 300_000,
      },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout + stderr);
        // What the proxy answered meanwhile, for a failure that the client's own output does not explain.
        const answers = t.logs.slice(logsBefore).map((l) => `${String(l.op)} ${String(l.status)} ${String(l.upstreamStatus ?? '')}`);
        const tail = stdout.length > 2000 ? `…${stdout.slice(-2000)}` : stdout;
        reject(new Error(`${cmd} ${args.join(' ')}\nexit ${String(err.code)} ${String(err.signal ?? '')}\n${tail}\n${stderr}\nproxy: ${answers.join(', ')}`));
      },
    );
  });
}

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
  await t.client().send(new CreateBucketCommand({ Bucket: bucket }));
  dir = mkdtempSync(join(tmpdir(), 'ssec-clients-'));
  key = { raw: randomBytes(32), b64: '', md5: '' };
  key.b64 = key.raw.toString('base64');
  key.md5 = createHash('md5').update(key.raw).digest('base64');
  keyFile = join(dir, 'key.bin');
  writeFileSync(keyFile, key.raw);
  writeFileSync(join(dir, 'big.bin'), randomBytes(100 * MiB));
});
after(async () => t?.close());

describe('aws s3 cp of 100 MiB with --sse-c, up and down', () => {
  for (const [label, aws] of [
    ['aws-cli 2.9 (Debian)', AWS_DEB],
    ['aws-cli 1.45 (current botocore)', AWS_NEW],
  ] as const) {
    test(label, async () => {
      assert.ok(existsSync(aws), `${aws} missing`);
      const name = `cp/${label.replace(/\W+/g, '-')}.bin`;
      const sseArgs = ['--sse-c', 'AES256', '--sse-c-key', `fileb://${keyFile}`];
      await run(aws, ['--endpoint-url', t.endpoint, 's3', 'cp', 'big.bin', `s3://${bucket}/${name}`, ...sseArgs]);
      const head = await t.client().send(new HeadObjectCommand({ Bucket: bucket, Key: name, ...sse(key) }));
      assert.equal(head.ContentLength, 100 * MiB);
      assert.match(head.ETag ?? '', /-\d+"$/, 'uploaded in parts');
      const out = `down-${label.replace(/\W+/g, '-')}.bin`;
      await run(aws, ['--endpoint-url', t.endpoint, 's3', 'cp', `s3://${bucket}/${name}`, out, ...sseArgs]);
      assert.equal(sha(join(dir, out)), sha(join(dir, 'big.bin')));
      // s3api: head and a ranged get across the first part boundary (8 MiB parts).
      const apiSse = ['--sse-customer-algorithm', 'AES256', '--sse-customer-key', `fileb://${keyFile}`];
      const headOut = JSON.parse(await run(aws, ['--endpoint-url', t.endpoint, 's3api', 'head-object', '--bucket', bucket, '--key', name, ...apiSse])) as { ContentLength: number };
      assert.equal(headOut.ContentLength, 100 * MiB);
      const rangeFile = join(dir, `range-${label.replace(/\W+/g, '-')}.bin`);
      const range = [8 * MiB - 100, 8 * MiB + 99];
      await run(aws, ['--endpoint-url', t.endpoint, 's3api', 'get-object', '--bucket', bucket, '--key', name, '--range', `bytes=${range[0]}-${range[1]}`, ...apiSse, rangeFile]);
      assert.ok(readFileSync(rangeFile).equals(readFileSync(join(dir, 'big.bin')).subarray(range[0]!, range[1]! + 1)));
    });
  }
});

describe('boto3 upload_file / download_file with 5 MiB + 1 byte parts', () => {
  const script = `
import sys, boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
endpoint, bucket, name, keyfile, src, dst = sys.argv[1:7]
key = open(keyfile, 'rb').read()
s3 = boto3.client('s3', endpoint_url=endpoint, config=Config(s3={'addressing_style': 'path'}))
cfg = TransferConfig(multipart_threshold=5*1024*1024+1, multipart_chunksize=5*1024*1024+1)
extra = {'SSECustomerAlgorithm': 'AES256', 'SSECustomerKey': key}
s3.upload_file(src, bucket, name, ExtraArgs=extra, Config=cfg)
s3.download_file(bucket, name, dst, ExtraArgs=extra, Config=cfg)
print(s3.head_object(Bucket=bucket, Key=name, **extra)['ContentLength'])
`;
  for (const [label, py] of [
    ['boto3 1.26 (Debian)', PY_DEB],
    ['boto3 1.43 (current botocore)', PY_NEW],
  ] as const) {
    test(label, async () => {
      writeFileSync(join(dir, 'transfer.py'), script);
      const name = `boto3/${label.replace(/\W+/g, '-')}.bin`;
      const src = join(dir, 'mid.bin');
      if (!existsSync(src)) writeFileSync(src, randomBytes(17 * MiB + 333));
      const dst = join(dir, `mid-${label.replace(/\W+/g, '-')}.out`);
      const out = await run(py, [join(dir, 'transfer.py'), t.endpoint, bucket, name, keyFile, src, dst]);
      assert.equal(out.trim().split('\n').pop(), String(17 * MiB + 333));
      assert.equal(sha(dst), sha(src));
    });
  }
});

describe('aws s3 sync --sse-c', () => {
  test('a second sync of an unchanged directory transfers nothing', async () => {
    const src = join(dir, 'tree');
    mkdirSync(join(src, 'sub'), { recursive: true });
    for (const [name, n] of [
      ['a.txt', 10],
      ['b.bin', 70_000],
      ['sub/c.bin', 9 * MiB + 7],
      ['empty', 0],
    ] as const) {
      writeFileSync(join(src, name), randomBytes(n));
    }
    const args = ['--endpoint-url', t.endpoint, 's3', 'sync', src, `s3://${bucket}/tree`, '--sse-c', 'AES256', '--sse-c-key', `fileb://${keyFile}`];
    const first = await run(AWS_DEB, args);
    assert.equal((first.match(/upload:/g) ?? []).length, 4, first);
    const second = await run(AWS_DEB, args);
    assert.equal((second.match(/upload:/g) ?? []).length, 0, second);
  });
});

describe('copies and key rotation with real clients', () => {
  for (const [label, aws] of [
    ['aws-cli 2.9 (Debian)', AWS_DEB],
    ['aws-cli 1.45 (current botocore)', AWS_NEW],
  ] as const) {
  test(`${label}: s3 cp s3→s3 of 20 MiB from one key to another (multipart copy), then copy-to-self rotation`, async () => {
    const oldKey = join(dir, 'old.key');
    const newKeyFile = join(dir, 'new.key');
    const newer = join(dir, 'newer.key');
    writeFileSync(oldKey, randomBytes(32));
    writeFileSync(newKeyFile, randomBytes(32));
    writeFileSync(newer, randomBytes(32));
    const src = join(dir, 'copy-src.bin');
    writeFileSync(src, randomBytes(20 * MiB));
    const ep = ['--endpoint-url', t.endpoint];
    const withKey = (f: string) => ['--sse-c', 'AES256', '--sse-c-key', `fileb://${f}`];
    const fromKey = (f: string) => ['--sse-c-copy-source', 'AES256', '--sse-c-copy-source-key', `fileb://${f}`];
    await run(aws, [...ep, 's3', 'cp', src, `s3://${bucket}/copy/${aws.length}/k`, ...withKey(oldKey)]);
    await run(aws, [...ep, 's3', 'cp', `s3://${bucket}/copy/${aws.length}/k`, `s3://${bucket}/copy/${aws.length}/k2`, ...fromKey(oldKey), ...withKey(newKeyFile)]);
    await run(aws, [...ep, 's3', 'cp', `s3://${bucket}/copy/${aws.length}/k2`, join(dir, 'k2.out'), ...withKey(newKeyFile)]);
    assert.equal(sha(join(dir, 'k2.out')), sha(src));
    // Rotation in place.
    await run(aws, [...ep, 's3', 'cp', `s3://${bucket}/copy/${aws.length}/k2`, `s3://${bucket}/copy/${aws.length}/k2`, ...fromKey(newKeyFile), ...withKey(newer)]);
    await assert.rejects(run(aws, [...ep, 's3', 'cp', `s3://${bucket}/copy/${aws.length}/k2`, join(dir, 'stale.out'), ...withKey(newKeyFile)]));
    await run(aws, [...ep, 's3', 'cp', `s3://${bucket}/copy/${aws.length}/k2`, join(dir, 'rotated.out'), ...withKey(newer)]);
    assert.equal(sha(join(dir, 'rotated.out')), sha(src));
  });
  }

  test('boto3 managed copy() (HEAD, multipart copy, Complete without SSE-C) and copy_object key rotation, both boto3 versions', async () => {
    const script = `
import sys, boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
endpoint, bucket, keyfile, src = sys.argv[1:5]
key = open(keyfile, 'rb').read()
s3 = boto3.client('s3', endpoint_url=endpoint, config=Config(s3={'addressing_style': 'path'}))
extra = {'SSECustomerAlgorithm': 'AES256', 'SSECustomerKey': key}
s3.upload_file(src, bucket, 'managed/src', ExtraArgs=extra)
cfg = TransferConfig(multipart_threshold=8*1024*1024, multipart_chunksize=8*1024*1024)
s3.copy({'Bucket': bucket, 'Key': 'managed/src'}, bucket, 'managed/dst', ExtraArgs={**extra, 'CopySourceSSECustomerAlgorithm': 'AES256', 'CopySourceSSECustomerKey': key}, Config=cfg)
body = s3.get_object(Bucket=bucket, Key='managed/dst', **extra)['Body'].read()
import os
new = os.urandom(32)
s3.copy_object(Bucket=bucket, Key='managed/dst', CopySource={'Bucket': bucket, 'Key': 'managed/dst'},
               CopySourceSSECustomerAlgorithm='AES256', CopySourceSSECustomerKey=key,
               SSECustomerAlgorithm='AES256', SSECustomerKey=new)
old_key_refused = False
try:
    s3.head_object(Bucket=bucket, Key='managed/dst', **extra)
except Exception as e:
    old_key_refused = '403' in str(e)
rotated = s3.get_object(Bucket=bucket, Key='managed/dst', SSECustomerAlgorithm='AES256', SSECustomerKey=new)['Body'].read()
print(len(body), body == open(src, 'rb').read() and rotated == body and old_key_refused)
`;
    writeFileSync(join(dir, 'managed_copy.py'), script); // not copy.py: that would shadow Python's own module
    const src = join(dir, 'copy-src-boto.bin');
    writeFileSync(src, randomBytes(18 * MiB + 3));
    for (const py of [PY_DEB, PY_NEW]) {
      const out = await run(py, [join(dir, 'managed_copy.py'), t.endpoint, bucket, keyFile, src]);
      assert.equal(out.trim().split('\n').pop(), `${18 * MiB + 3} True`, py);
    }
  });
});

describe('checksums with current botocore (aws-chunked CRC32 trailers)', () => {
  test('boto3 1.43 put_object then get/head with ChecksumMode: the trailer CRC32 comes back and botocore validates the body', async () => {
    const script = `
import sys, boto3, os, json
from botocore.config import Config
endpoint, bucket, keyfile = sys.argv[1:4]
key = open(keyfile, 'rb').read()
s3 = boto3.client('s3', endpoint_url=endpoint, config=Config(s3={'addressing_style': 'path'}))
extra = {'SSECustomerAlgorithm': 'AES256', 'SSECustomerKey': key}
data = os.urandom(300000)
put = s3.put_object(Bucket=bucket, Key='ck/trailer', Body=data, **extra)
got = s3.get_object(Bucket=bucket, Key='ck/trailer', ChecksumMode='ENABLED', **extra)
body = got['Body'].read()
head = s3.head_object(Bucket=bucket, Key='ck/trailer', ChecksumMode='ENABLED', **extra)
print(json.dumps({'put': put.get('ChecksumCRC32'), 'get': got.get('ChecksumCRC32'), 'head': head.get('ChecksumCRC32'), 'same': body == data}))
`;
    writeFileSync(join(dir, 'trailer.py'), script);
    const out = await run(PY_NEW, [join(dir, 'trailer.py'), t.endpoint, bucket, keyFile]);
    const r = JSON.parse(out.trim().split('\n').pop()!) as { put?: string; get?: string; head?: string; same: boolean };
    assert.ok(r.put, 'botocore sent a CRC32 and the proxy answered with it');
    assert.equal(r.get, r.put);
    assert.equal(r.head, r.put);
    assert.equal(r.same, true);
    const raw = await fetchRawHead(`ck/trailer`);
    assert.equal(raw, 'crc32.tail', 'it came as a trailer, so it is stored after the chunks');
  });
});

async function fetchRawHead(name: string): Promise<string | undefined> {
  const direct = directClient(up);
  try {
    const head = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: name }));
    return head.Metadata?.['s3-ssec-proxy-checksum'];
  } finally {
    direct.destroy();
  }
}
