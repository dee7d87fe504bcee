/**
 * More real clients with their default settings, through the proxy over Ceph RGW: Debian's rclone with its
 * SSE-C options, and minio-js (which has no SSE-C API of its own: the headers are passed as metadata).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import * as Minio from 'minio';
import {
  newKey,
  rgwUpstream,
  sse,
  startTestProxy,
  type TestProxy,
  type UpstreamInfo,
} from '../support/proxy.ts';
import { rcloneS3Env } from '../support/rclone.ts';

const MiB = 1024 * 1024;
let up: UpstreamInfo;
let t: TestProxy;
let dir: string;
const bucket = `matrix-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
  await t.client().send(new CreateBucketCommand({ Bucket: bucket }));
  dir = mkdtempSync(join(tmpdir(), 'ssec-matrix-'));
});
after(async () => t?.close());

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

describe('rclone (Debian) with --s3-sse-customer-*', () => {
  const rclone = '/usr/bin/rclone';
  const key = newKey();
  function run(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        rclone,
        [
          ...args,
          '--ca-cert',
          t.caPath,
          '--s3-sse-customer-algorithm',
          'AES256',
          '--s3-sse-customer-key-base64',
          key.b64,
          '--s3-sse-customer-key-md5',
          key.md5,
          '--s3-upload-cutoff',
          '5M',
          '--s3-chunk-size',
          '5M',
        ],
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

  test('put (single and multipart), get, ranged read, listing sizes, server-side copy', async () => {
    assert.ok(existsSync(rclone), 'scripts/test.sh installs Debian\'s rclone');
    const small = randomBytes(100_000);
    const large = randomBytes(12 * MiB + 3);
    writeFileSync(join(dir, 'small.bin'), small);
    writeFileSync(join(dir, 'large.bin'), large);
    await run(['copyto', join(dir, 'small.bin'), `px:${bucket}/rclone/small.bin`]);
    await run(['copyto', join(dir, 'large.bin'), `px:${bucket}/rclone/large.bin`]);
    const head = await t.client().send(new HeadObjectCommand({ Bucket: bucket, Key: 'rclone/large.bin', ...sse(key) }));
    assert.equal(head.ContentLength, large.length);
    await run(['copyto', `px:${bucket}/rclone/large.bin`, join(dir, 'large.out')]);
    assert.equal(sha(readFileSync(join(dir, 'large.out'))), sha(large));
    const part = Buffer.from(await run(['cat', '--offset', '5000000', '--count', '1000', `px:${bucket}/rclone/large.bin`]), 'latin1');
    assert.ok(part.equals(large.subarray(5_000_000, 5_001_000)));
    const list = JSON.parse(await run(['lsjson', `px:${bucket}/rclone`])) as Array<{ Path: string; Size: number }>;
    assert.deepEqual(Object.fromEntries(list.map((e) => [e.Path, e.Size])), { 'small.bin': small.length, 'large.bin': large.length });
    await run(['copyto', `px:${bucket}/rclone/small.bin`, `px:${bucket}/rclone/small-copy.bin`]);
    await run(['copyto', `px:${bucket}/rclone/small-copy.bin`, join(dir, 'small.out')]);
    assert.ok(readFileSync(join(dir, 'small.out')).equals(small));
  });

  test('key rotation: rclone copies between two remotes on one bucket, one per key, re-encrypting in flight; in place it stops at its HEAD', async () => {
    const next = newKey();
    const remote = (name: string, k: typeof key) => ({
      [`RCLONE_CONFIG_${name}_TYPE`]: 's3',
      [`RCLONE_CONFIG_${name}_PROVIDER`]: 'Other',
      [`RCLONE_CONFIG_${name}_ENDPOINT`]: t.endpoint,
      [`RCLONE_CONFIG_${name}_ACCESS_KEY_ID`]: up.accessKeyId,
      [`RCLONE_CONFIG_${name}_SECRET_ACCESS_KEY`]: up.secretAccessKey,
      [`RCLONE_CONFIG_${name}_REGION`]: up.region,
      [`RCLONE_CONFIG_${name}_FORCE_PATH_STYLE`]: 'true',
      [`RCLONE_CONFIG_${name}_SSE_CUSTOMER_ALGORITHM`]: 'AES256',
      [`RCLONE_CONFIG_${name}_SSE_CUSTOMER_KEY_BASE64`]: k.b64,
      [`RCLONE_CONFIG_${name}_SSE_CUSTOMER_KEY_MD5`]: k.md5,
    });
    const rc = (args: string[]) =>
      new Promise<void>((resolve, reject) => {
        execFile(rclone, [...args, '--ca-cert', t.caPath], { env: { PATH: '/usr/bin:/bin', HOME: dir, ...remote('OLD', key), ...remote('NEW', next) }, timeout: 300_000 }, (err, _o, stderr) =>
          err ? reject(new Error(`rclone ${args.join(' ')}\n${stderr}`)) : resolve(),
        );
      });
    const data = randomBytes(7 * MiB + 11);
    writeFileSync(join(dir, 'rot.bin'), data);
    await rc(['copyto', join(dir, 'rot.bin'), `old:${bucket}/rclone/rot.bin`]);
    await rc(['copyto', `old:${bucket}/rclone/rot.bin`, `new:${bucket}/rclone/rotated.bin`]);
    await rc(['copyto', `new:${bucket}/rclone/rotated.bin`, join(dir, 'rot.out')]);
    assert.ok(readFileSync(join(dir, 'rot.out')).equals(data));
    await assert.rejects(t.client().send(new HeadObjectCommand({ Bucket: bucket, Key: 'rclone/rotated.bin', ...sse(key) })), 'the old key does not read it');
    // In place, rclone first HEADs the destination with the new key: S3 (and the proxy) answer 403 for an
    // object under another key, which rclone reports as an error. Server-side rotation needs a client that
    // sends both key trios (aws-cli, boto3, the SDK, minio-js).
    await assert.rejects(rc(['copyto', `old:${bucket}/rclone/rot.bin`, `new:${bucket}/rclone/rot.bin`]), /403|Forbidden/);
  });
});

describe('minio-js 8 (SSE-C headers passed as metadata, as its docs say)', () => {
  const key = newKey();
  const ssecMeta = {
    'X-Amz-Server-Side-Encryption-Customer-Algorithm': 'AES256',
    'X-Amz-Server-Side-Encryption-Customer-Key': key.b64,
    'X-Amz-Server-Side-Encryption-Customer-Key-MD5': key.md5,
  };
  const getOpts = { SSECustomerAlgorithm: 'AES256', SSECustomerKey: key.b64, SSECustomerKeyMD5: key.md5 };
  let client: Minio.Client;
  before(() => {
    const url = new URL(t.endpoint);
    client = new Minio.Client({
      endPoint: url.hostname,
      port: Number(url.port),
      useSSL: true,
      accessKey: up.accessKeyId,
      secretKey: up.secretAccessKey,
      region: up.region,
      pathStyle: true,
      transportAgent: new https.Agent({ ca: t.caPem }),
    });
  });

  async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  test('putObject, getObject and getPartialObject (its key also rides in the query, never logged)', async () => {
    const data = randomBytes(300_000);
    await client.putObject(bucket, 'minio/obj', data, data.length, ssecMeta);
    const got = await collect(await client.getObject(bucket, 'minio/obj', getOpts));
    assert.ok(got.equals(data));
    const part = await collect(await client.getPartialObject(bucket, 'minio/obj', 1000, 2000, getOpts));
    assert.ok(part.equals(data.subarray(1000, 3000)));
    assert.ok(!JSON.stringify(t.logs).includes(key.b64));
  });

  test('copyObject with the SSE-C headers in its `Headers` option: plain → SSE-C, then copy-to-self key rotation', async () => {
    const data = randomBytes(200_000);
    await client.putObject(bucket, 'minio/plain', data, data.length);
    await client.copyObject(
      new Minio.CopySourceOptions({ Bucket: bucket, Object: 'minio/plain' }),
      new Minio.CopyDestinationOptions({ Bucket: bucket, Object: 'minio/enc', Headers: ssecMeta }),
    );
    assert.ok((await collect(await client.getObject(bucket, 'minio/enc', getOpts))).equals(data));
    const next = newKey();
    await client.copyObject(
      new Minio.CopySourceOptions({ Bucket: bucket, Object: 'minio/enc' }),
      new Minio.CopyDestinationOptions({
        Bucket: bucket,
        Object: 'minio/enc',
        Headers: {
          'X-Amz-Server-Side-Encryption-Customer-Algorithm': 'AES256',
          'X-Amz-Server-Side-Encryption-Customer-Key': next.b64,
          'X-Amz-Server-Side-Encryption-Customer-Key-MD5': next.md5,
          'X-Amz-Copy-Source-Server-Side-Encryption-Customer-Algorithm': 'AES256',
          'X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key': key.b64,
          'X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key-MD5': key.md5,
        },
      }),
    );
    const rotated = { SSECustomerAlgorithm: 'AES256', SSECustomerKey: next.b64, SSECustomerKeyMD5: next.md5 };
    assert.ok((await collect(await client.getObject(bucket, 'minio/enc', rotated))).equals(data));
    await assert.rejects(client.getObject(bucket, 'minio/enc', getOpts), (e: Error & { code?: string }) => e.code === 'AccessDenied');
    assert.ok(!JSON.stringify(t.logs).includes(next.b64));
    // statObject can only put the key in the query string, which S3 ignores: HEAD is S3's bare 400.
    await assert.rejects(client.statObject(bucket, 'minio/enc', rotated as never));
  });

  test('its multipart upload omits SSE-C on UploadPart: refused with 400, as AWS S3 refuses it', async () => {
    const data = randomBytes(65 * MiB);
    await assert.rejects(client.putObject(bucket, 'minio/big', data, data.length, ssecMeta), (e: Error & { code?: string }) => e.code === 'InvalidRequest');
  });
});
