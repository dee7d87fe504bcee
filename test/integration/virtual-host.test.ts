/**
 * Virtual-hosted-style addressing: `bucket.<domain>` in the Host header (and TLS SNI), beside path style.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { after, before, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  newKey,
  rgwUpstream,
  sse,
  startTestProxy,
  type TestProxy,
  type UpstreamInfo,
} from '../support/proxy.ts';

const DOMAIN = 's3.proxy.test';
let up: UpstreamInfo;
let t: TestProxy;
let vh: S3Client;

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up, { SSEC_PROXY_VIRTUAL_HOST_DOMAIN: DOMAIN });
  // Every *.s3.proxy.test name resolves to loopback for this client only; TLS checks the name (SNI) as usual.
  const agent = new https.Agent({
    ca: t.caPem,
    lookup: (_host, opts, cb) => {
      if ((opts as { all?: boolean }).all) (cb as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
      else (cb as (e: null, a: string, f: number) => void)(null, '127.0.0.1', 4);
    },
  });
  vh = new S3Client({
    endpoint: `https://${DOMAIN}:${t.proxy.httpsPort}`,
    region: up.region,
    forcePathStyle: false,
    credentials: { accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: agent }),
  });
});
after(async () => {
  vh?.destroy();
  await t?.close();
});

test('an SSE-C object written and read as bucket.domain, listed, and read back path-style', async () => {
  const bucket = `vh-${randomBytes(4).toString('hex')}`;
  await t.client().send(new CreateBucketCommand({ Bucket: bucket }));
  const k = newKey();
  const data = randomBytes(70_000);
  let host = '';
  vh.middlewareStack.add(
    (next) => async (args) => {
      host = String((args.request as { headers: Record<string, string> }).headers['host'] ?? (args.request as { hostname: string }).hostname);
      return next(args);
    },
    { step: 'finalizeRequest', name: 'captureHost' },
  );
  await vh.send(new PutObjectCommand({ Bucket: bucket, Key: 'dir/obj', Body: data, ...sse(k) }));
  assert.match(host, new RegExp(`^${bucket}\\.${DOMAIN.replace(/\./g, '\\.')}`), 'virtual-hosted request');
  const got = await vh.send(new GetObjectCommand({ Bucket: bucket, Key: 'dir/obj', Range: 'bytes=100-199', ...sse(k) }));
  assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(data.subarray(100, 200)));
  const list = await vh.send(new ListObjectsV2Command({ Bucket: bucket }));
  assert.deepEqual(list.Contents?.map((c) => [c.Key, c.Size]), [['dir/obj', data.length]]);
  const pathStyle = await t.client().send(new GetObjectCommand({ Bucket: bucket, Key: 'dir/obj', ...sse(k) }));
  assert.ok(Buffer.from(await pathStyle.Body!.transformToByteArray()).equals(data));
});
