/**
 * Issue 11, read integrity with real clients: an SSE-C single-PUT object cut in Ceph RGW at a chunk boundary
 * (its size is then that of a shorter, valid object) must never be accepted as a whole read. The proxy
 * announces the length the stored size implies and holds the last chunk back until the end shows it is not
 * FINAL; the client gets a short body on a cut connection. Each client's reaction to that, with its defaults:
 * aws-cli 2.9 (Debian) and 1.45, boto3 1.26 (Debian) and 1.43, rclone (Debian), the JS SDK v3 — a whole read and
 * a ranged read of the end, each must fail (non-zero exit, exception), never write the short data as a result.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { bodyBytes, directClient, rgwUpstream, sse, startTestProxy, type SseKey, type TestProxy, type UpstreamInfo } from '../support/proxy.ts';

const PYENV = process.env.PYENV_ROOT ?? join(homedir(), '.pyenv');
const CHUNK = 65536 + 40;
const bucket = `cut-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const data = randomBytes(5 * 65536 + 333);
const KEPT_CHUNKS = 3;

let up: UpstreamInfo;
let t: TestProxy;
let dir: string;
let keyFile: string;
let key: SseKey;

/** Runs a client; resolves with its exit code and output (it is expected to fail). */
function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
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
          AWS_MAX_ATTEMPTS: '2',
          RCLONE_CONFIG_PX_TYPE: 's3',
          RCLONE_CONFIG_PX_PROVIDER: 'Other',
          RCLONE_CONFIG_PX_ENDPOINT: t.endpoint,
          RCLONE_CONFIG_PX_ACCESS_KEY_ID: up.accessKeyId,
          RCLONE_CONFIG_PX_SECRET_ACCESS_KEY: up.secretAccessKey,
          RCLONE_CONFIG_PX_REGION: up.region,
          RCLONE_CONFIG_PX_FORCE_PATH_STYLE: 'true',
        },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 120_000,
        encoding: 'latin1',
      },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0, out: `${stdout}\n${stderr}` }),
    );
  });
}

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
  const s3 = t.client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  dir = mkdtempSync(join(tmpdir(), 'ssec-cut-'));
  const raw = randomBytes(32);
  key = { raw, b64: raw.toString('base64'), md5: createHash('md5').update(raw).digest('base64') };
  keyFile = join(dir, 'key.bin');
  writeFileSync(keyFile, raw);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cut.bin', Body: data, ...sse(key) }));
  // The attacker's edit, straight in the store: the same metadata (envelope included), fewer chunks.
  const direct = directClient(up);
  try {
    const stored = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: 'cut.bin' }));
    const body = await bodyBytes(stored.Body);
    await direct.send(new PutObjectCommand({ Bucket: bucket, Key: 'cut.bin', Body: body.subarray(0, KEPT_CHUNKS * CHUNK), Metadata: stored.Metadata }));
  } finally {
    direct.destroy();
  }
});
after(async () => t?.close());

/** The client failed, and any file it left is not a whole read of what the proxy announced. */
function assertRejected(r: { code: number; out: string }, file?: string): void {
  assert.notEqual(r.code, 0, `the client accepted the cut object:\n${r.out}`);
  if (file && existsSync(file)) assert.ok(readFileSync(file).length < KEPT_CHUNKS * 65536, `${file} holds the whole announced length`);
}

describe('a single PUT cut in the store at a chunk boundary', () => {
  const awsSse = ['--sse-c', 'AES256', '--sse-c-key', `fileb://KEY`];
  const apiSse = ['--sse-customer-algorithm', 'AES256', '--sse-customer-key', `fileb://KEY`];
  for (const [label, aws] of [
    ['aws-cli 2.9 (Debian)', '/usr/bin/aws'],
    ['aws-cli 1.45', join(PYENV, 'shims', 'aws')],
  ] as const) {
    test(`${label}: s3 cp and s3api get-object --range of the end both fail`, async () => {
      assert.ok(existsSync(aws), `${aws} missing`);
      const k = (a: string[]) => a.map((s) => s.replace('KEY', keyFile));
      const out = join(dir, `cp-${label.replace(/\W+/g, '-')}.bin`);
      assertRejected(await run(aws, ['--endpoint-url', t.endpoint, 's3', 'cp', `s3://${bucket}/cut.bin`, out, ...k(awsSse)]), out);
      const ranged = join(dir, `range-${label.replace(/\W+/g, '-')}.bin`);
      assertRejected(
        await run(aws, ['--endpoint-url', t.endpoint, 's3api', 'get-object', '--bucket', bucket, '--key', 'cut.bin', '--range', 'bytes=-100', ...k(apiSse), ranged]),
        ranged,
      );
    });
  }

  const script = `
import sys, boto3
from botocore.config import Config
endpoint, bucket, keyfile = sys.argv[1:4]
key = open(keyfile, 'rb').read()
s3 = boto3.client('s3', endpoint_url=endpoint, config=Config(s3={'addressing_style': 'path'}, retries={'max_attempts': 2}))
extra = {'SSECustomerAlgorithm': 'AES256', 'SSECustomerKey': key}
for rng in [None, 'bytes=-100']:
    args = dict(Bucket=bucket, Key='cut.bin', **extra)
    if rng: args['Range'] = rng
    try:
        r = s3.get_object(**args)
        body = r['Body'].read()
        print('ACCEPTED', rng, len(body), r['ContentLength'])
        sys.exit(1)
    except Exception as e:
        print('REJECTED', rng, type(e).__name__)
`;
  for (const [label, py] of [
    ['boto3 1.26 (Debian)', '/usr/bin/python3'],
    ['boto3 1.43', join(PYENV, 'shims', 'python3')],
  ] as const) {
    test(`${label}: get_object().read(), whole and the last 100 bytes, raise`, async () => {
      writeFileSync(join(dir, 'read.py'), script);
      const r = await run(py, [join(dir, 'read.py'), t.endpoint, bucket, keyFile]);
      assert.equal(r.code, 0, r.out);
      assert.equal(r.out.match(/REJECTED/g)?.length, 2, r.out);
    });
  }

  test('rclone (Debian): cat of the whole object and of its last 100 bytes fail', async () => {
    const sseArgs = ['--ca-cert', t.caPath, '--s3-sse-customer-algorithm', 'AES256', '--s3-sse-customer-key-base64', key.b64, '--s3-sse-customer-key-md5', key.md5, '--retries', '1', '--low-level-retries', '1'];
    assertRejected(await run('/usr/bin/rclone', ['cat', `px:${bucket}/cut.bin`, ...sseArgs]));
    assertRejected(await run('/usr/bin/rclone', ['cat', '--tail', '100', `px:${bucket}/cut.bin`, ...sseArgs]));
  });

  test('JS SDK v3: the body stream of a whole and of a ranged read errors', async () => {
    for (const range of [undefined, 'bytes=-100']) {
      await assert.rejects(async () => {
        const r = await t.client().send(new GetObjectCommand({ Bucket: bucket, Key: 'cut.bin', ...(range ? { Range: range } : {}), ...sse(key) }));
        await bodyBytes(r.Body);
      }, String(range));
    }
  });
});
