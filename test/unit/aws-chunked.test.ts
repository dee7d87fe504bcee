/**
 * aws-chunked decoding with the AWS documentation's examples (66 560 bytes of 'a' in 64 KiB + 1 KiB chunks,
 * signed with the documentation's example credentials) and the unsigned-trailer form botocore and the JS SDK send.
 */
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import fc from 'fast-check';
import { createAwsChunkedDecoder, type AwsChunkedOptions } from '../../src/sigv4/aws-chunked.ts';
import { deriveSigningKey } from '../../src/sigv4/canonical.ts';
import { createChecksumCheck } from '../../src/s3/checksums.ts';
import { S3Error } from '../../src/s3/errors.ts';

const DATA = Buffer.alloc(66_560, 'a');
const KEY = deriveSigningKey('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', '20130524', 'us-east-1', 's3');
const SCOPE = '20130524/us-east-1/s3/aws4_request';
const AMZ_DATE = '20130524T000000Z';

function signedBody(sigs: string[], trailer?: string): Buffer {
  return Buffer.concat([
    Buffer.from(`10000;chunk-signature=${sigs[0]}\r\n`),
    DATA.subarray(0, 65_536),
    Buffer.from(`\r\n400;chunk-signature=${sigs[1]}\r\n`),
    DATA.subarray(65_536),
    Buffer.from(`\r\n0;chunk-signature=${sigs[2]}\r\n`),
    Buffer.from(trailer ?? '\r\n'),
  ]);
}

const PAYLOAD_SIGS = [
  'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
  '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
  'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
];
const TRAILER_SIGS = [
  'b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2',
  '1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7',
  '2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992',
];
const TRAILER = 'x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n';

async function decode(body: Buffer, opts: AwsChunkedOptions, pieces = 1): Promise<Buffer> {
  const parts: Buffer[] = [];
  const step = Math.ceil(body.length / pieces);
  for (let i = 0; i < body.length; i += step) parts.push(body.subarray(i, i + step));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(parts),
    createAwsChunkedDecoder(opts),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

const payloadOpts = (): AwsChunkedOptions => ({
  mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
  declaredTrailers: [],
  signing: { key: KEY, seedSignature: '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9', amzDate: AMZ_DATE, scope: SCOPE },
});

test('STREAMING-AWS4-HMAC-SHA256-PAYLOAD: the AWS example decodes, in any split', async () => {
  for (const pieces of [1, 3, 777, 66_000]) {
    assert.ok((await decode(signedBody(PAYLOAD_SIGS), payloadOpts(), pieces)).equals(DATA), `pieces=${pieces}`);
  }
});

test('a wrong chunk signature → SignatureDoesNotMatch before the stream can end', async () => {
  const sigs = [...PAYLOAD_SIGS];
  sigs[1] = sigs[1]!.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  const out: Buffer[] = [];
  await assert.rejects(
    pipeline(
      Readable.from([signedBody(sigs)]),
      createAwsChunkedDecoder(payloadOpts()),
      new Writable({
        write(c: Buffer, _e, cb) {
          out.push(c);
          cb();
        },
      }),
    ),
    (e: unknown) => e instanceof S3Error && e.code === 'SignatureDoesNotMatch' && e.status === 403,
  );
  // The stream fails at the end of the bad chunk, before its own end: the last stage of an upload (encryptor
  // or hold-back) therefore never completes it.
});

test('STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: the AWS example decodes and verifies its trailer', async () => {
  let trailers: Map<string, string> | undefined;
  const opts: AwsChunkedOptions = {
    mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
    declaredTrailers: ['x-amz-checksum-crc32c'],
    signing: { key: KEY, seedSignature: '106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e', amzDate: AMZ_DATE, scope: SCOPE },
    onTrailers: (t) => (trailers = t),
  };
  assert.ok((await decode(signedBody(TRAILER_SIGS, TRAILER), opts, 5)).equals(DATA));
  assert.equal(trailers?.get('x-amz-checksum-crc32c'), 'sOO8/Q==');
  const tampered = TRAILER.replace('sOO8/Q==', 'AAAAAA==');
  await assert.rejects(decode(signedBody(TRAILER_SIGS, tampered), opts), (e: unknown) => e instanceof S3Error && e.code === 'SignatureDoesNotMatch');
});

function unsignedBody(data: Buffer, chunk: number, checksum: string): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunk) {
    const piece = data.subarray(i, i + chunk);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`0\r\nx-amz-checksum-crc32:${checksum}\r\n\r\n`));
  return Buffer.concat(parts);
}

function crc32b64(data: Buffer): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc32(data));
  return b.toString('base64');
}

test('STREAMING-UNSIGNED-PAYLOAD-TRAILER: any data, any chunk size, any split; the CRC32 trailer is checked', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 5000 }), fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 50 }), async (raw, chunk, pieces) => {
      const data = Buffer.from(raw);
      let trailers: Map<string, string> | undefined;
      const opts: AwsChunkedOptions = {
        mode: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        declaredTrailers: ['x-amz-checksum-crc32'],
        onTrailers: (t) => (trailers = t),
      };
      const out = await decode(unsignedBody(data, chunk, crc32b64(data)), opts, pieces);
      assert.ok(out.equals(data));
      assert.equal(trailers?.get('x-amz-checksum-crc32'), crc32b64(data));
    }),
    { numRuns: 150 },
  );
});

test('the trailer checksum stage fails with BadDigest on a mismatch', async () => {
  const data = Buffer.from('hello world');
  const trailers = new Map<string, string>();
  const run = pipeline(
    Readable.from([unsignedBody(data, 4, 'AAAAAA==')]),
    createAwsChunkedDecoder({
      mode: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
      declaredTrailers: ['x-amz-checksum-crc32'],
      onTrailers: (t) => t.forEach((v, k) => trailers.set(k, v)),
    }),
    createChecksumCheck('crc32', () => trailers.get('x-amz-checksum-crc32')),
    new Writable({ write: (_c, _e, cb) => cb() }),
  );
  await assert.rejects(run, (e: unknown) => e instanceof S3Error && e.code === 'BadDigest');
});

test('malformed framing → IncompleteBody: bad size, data longer than declared, truncation, undeclared trailer', async () => {
  const opts = (): AwsChunkedOptions => ({ mode: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', declaredTrailers: ['x-amz-checksum-crc32'] });
  const good = unsignedBody(Buffer.from('abcdef'), 3, crc32b64(Buffer.from('abcdef')));
  const bad = [
    Buffer.from('zz\r\nabc\r\n0\r\n\r\n'),
    Buffer.from('2\r\nabc\r\n0\r\nx-amz-checksum-crc32:x\r\n\r\n'),
    good.subarray(0, good.length - 5),
    Buffer.from('3\r\nabc\r\n0\r\nx-amz-meta-evil:1\r\n\r\n'),
    Buffer.concat([good, Buffer.from('extra')]),
    Buffer.from('3\r\nabc\r\n0\r\n\r\n'),
  ];
  for (const body of bad) {
    await assert.rejects(decode(body, opts()), (e: unknown) => e instanceof S3Error && e.status === 400, JSON.stringify(body.toString()));
  }
});
