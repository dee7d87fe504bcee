/**
 * The README's aws-cli walkthrough, run verbatim with Debian's aws-cli 2.9 (/usr/bin/aws):
 * 1. against the real start path (the CLI with no configuration: embedded store, generated dev certificate);
 * 2. against the proxy in front of Ceph RGW, where we also check what is at rest.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, symlinkSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import {
  directClient,
  rgwUpstream,
  startTestProxy,
  type TestProxy,
  type UpstreamInfo,
} from '../support/proxy.ts';
import { freePort } from '../support/net.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const AWS = '/usr/bin/aws';

function walkthrough(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- walkthrough:start -->\s*```sh\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme);
  assert.ok(m, 'README has a walkthrough block');
  return m[1]!;
}

/** Runs a script with bash -e in `cwd`, `aws` resolving to Debian's aws-cli. */
function runScript(script: string, cwd: string, env: Record<string, string>): Promise<{ code: number; out: string }> {
  const bin = join(cwd, '.bin');
  if (!existsSync(bin)) {
    mkdirSync(bin);
    symlinkSync(AWS, join(bin, 'aws'));
  }
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-euo', 'pipefail', '-c', script],
      {
        cwd,
        env: {
          PATH: `${bin}:/usr/bin:/bin`,
          HOME: cwd,
          AWS_PAGER: '',
          AWS_EC2_METADATA_DISABLED: 'true',
          AWS_DEFAULT_REGION: 'us-east-1',
          ...env,
        },
        maxBuffer: 10 * 1024 * 1024,
        timeout: 300_000,
      },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

test('aws-cli 2.9 is installed from Debian', () => {
  assert.ok(existsSync(AWS), `${AWS} missing: scripts/test.sh installs Debian's awscli`);
});

test('README walkthrough against `s3-ssec-proxy --embedded` with no configuration (what npm start runs)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssec-readme-'));
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, 'bin/s3-ssec-proxy.js'), 'serve', '--embedded'], {
    cwd: dir,
    env: { ...process.env, SSEC_PROXY_LISTEN: `127.0.0.1:${port}`, SSEC_PROXY_STATE_DIR: join(dir, '.state') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let banner = '';
  child.stderr!.on('data', (c: Buffer) => (banner += c.toString()));
  child.stdout!.resume();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('proxy did not start:\n' + banner)), 60_000);
      child.stderr!.on('data', () => {
        if (banner.includes('aws --endpoint-url')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => reject(new Error(`proxy exited ${code}:\n${banner}`)));
    });
    assert.match(banner, /listening on https:\/\/127\.0\.0\.1:\d+/);
    const r = await runScript(walkthrough(), dir, {
      AWS_ACCESS_KEY_ID: 'EMBEDDED',
      AWS_SECRET_ACCESS_KEY: 'EMBEDDED',
      AWS_CA_BUNDLE: join(dir, '.state/tls/ca.pem'),
      EP: `https://127.0.0.1:${port}`,
    });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /"SSECustomerKeyMD5"/);
    assert.match(r.out, /refused without the key/);
  } finally {
    // A proxy that already exited (a failed start) must fail the test, not hang it waiting for an exit.
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }
});

let up: UpstreamInfo;
let t: TestProxy;
before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
});
after(async () => t?.close());

test('README walkthrough through the proxy over Ceph RGW; RGW holds only ciphertext', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssec-readme-rgw-'));
  const bucket = `demo-${randomBytes(4).toString('hex')}`;
  const script = walkthrough().replace(/s3:\/\/demo\b/g, `s3://${bucket}`).replace(/--bucket demo\b/g, `--bucket ${bucket}`);
  const r = await runScript(script, dir, {
    AWS_ACCESS_KEY_ID: up.accessKeyId,
    AWS_SECRET_ACCESS_KEY: up.secretAccessKey,
    AWS_CA_BUNDLE: t.caPath,
    EP: t.endpoint,
  });
  assert.equal(r.code, 0, r.out);
  const direct = directClient(up);
  try {
    const plain = readFileSync(join(dir, 'data.bin'));
    const raw = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: 'data.bin' }));
    const stored = Buffer.from(await raw.Body!.transformToByteArray());
    assert.ok(stored.length > plain.length);
    assert.equal(stored.indexOf(plain.subarray(0, 64)), -1, 'plaintext found at rest');
    const head = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: 'hello.txt' }));
    const key = readFileSync(join(dir, 'key.bin'));
    assert.ok(!JSON.stringify(head.Metadata).includes(key.toString('base64')));
  } finally {
    direct.destroy();
  }
});
