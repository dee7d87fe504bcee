/**
 * Payload checks: bytes pass through unchanged and unheld; a mismatch fails at the end with S3's code, so a
 * downstream writable sees 'error' and never 'finish'.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { S3Error } from '../../src/s3/errors.ts';
import { createMd5Check, createSha256Check, parseContentMd5 } from '../../src/sigv4/payload.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const md5b64 = (b: Buffer) => createHash('md5').update(b).digest('base64');

/** A sink that records what reached it and how it ended. */
function sink() {
  const got: Buffer[] = [];
  const events: string[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk);
      cb();
    },
  });
  w.on('finish', () => events.push('finish'));
  w.on('error', (e) => events.push(`error:${e instanceof S3Error ? e.code : String(e)}`));
  return { w, got, events };
}

const chunksArb = fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }).map((a) => a.map((u) => Buffer.from(u)));

async function run(chunks: Buffer[], check: Transform) {
  const s = sink();
  let error: unknown;
  try {
    await pipeline(Readable.from(chunks), check, s.w);
  } catch (e) {
    error = e;
  }
  return { ...s, error };
}

describe('createSha256Check', () => {
  test('passes every byte through unchanged, chunk by chunk (property)', async () => {
    await fc.assert(
      fc.asyncProperty(chunksArb, async (chunks) => {
        const all = Buffer.concat(chunks);
        const r = await run(chunks, createSha256Check(sha256(all)));
        assert.equal(r.error, undefined);
        assert.deepEqual(Buffer.concat(r.got), all);
        assert.deepEqual(r.events, ['finish']);
      }),
      { numRuns: 100 },
    );
  });

  test('accepts upper-case hex; the empty body', async () => {
    const r = await run([], createSha256Check(sha256(Buffer.alloc(0)).toUpperCase()));
    assert.equal(r.error, undefined);
  });

  test('a mismatch fails at the end with XAmzContentSHA256Mismatch 400; the sink errors instead of finishing', async () => {
    const data = [randomBytes(1000), randomBytes(1000), randomBytes(17)];
    const all = Buffer.concat(data);
    const wrong = sha256(Buffer.concat([all, Buffer.from('x')]));
    const r = await run(data, createSha256Check(wrong));
    assert.ok(r.error instanceof S3Error);
    assert.equal(r.error.code, 'XAmzContentSHA256Mismatch');
    assert.equal(r.error.status, 400);
    assert.equal(r.error.message, "The provided 'x-amz-content-sha256' header does not match what was computed.");
    assert.equal(r.error.extra['ClientComputedContentSHA256'], wrong);
    assert.equal(r.error.extra['S3ComputedContentSHA256'], sha256(all));
    // Nothing was held back, and yet the stream never completed.
    assert.deepEqual(Buffer.concat(r.got), all);
    assert.deepEqual(r.events, ['error:XAmzContentSHA256Mismatch']);
  });

  test('any single flipped bit is caught (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        chunksArb.filter((c) => Buffer.concat(c).length > 0),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        async (chunks, at, bit) => {
          const all = Buffer.concat(chunks);
          const expected = sha256(all);
          const i = at % all.length;
          const flipped = Buffer.from(all);
          flipped[i] = (flipped[i] ?? 0) ^ (1 << bit);
          const r = await run([flipped], createSha256Check(expected));
          assert.ok(r.error instanceof S3Error && r.error.code === 'XAmzContentSHA256Mismatch');
          assert.ok(!r.events.includes('finish'));
        },
      ),
      { numRuns: 50 },
    );
  });

  test('rejects a non-hash expectation up front (programming error)', () => {
    assert.throws(() => createSha256Check('UNSIGNED-PAYLOAD'), TypeError);
  });
});

describe('Content-MD5', () => {
  test('parseContentMd5: base64 of 16 bytes, else InvalidDigest 400', () => {
    const good = md5b64(Buffer.from('hello'));
    assert.equal(parseContentMd5(good).length, 16);
    assert.equal(parseContentMd5(` ${good} `).toString('base64'), good);
    for (const bad of ['', 'abc', Buffer.alloc(15).toString('base64'), Buffer.alloc(17).toString('base64'), 'XUFAKrxLKna5cZ2REBfFkg', '!UFAKrxLKna5cZ2REBfFkg==', createHash('md5').update('x').digest('hex')]) {
      assert.throws(
        () => parseContentMd5(bad),
        (e: unknown) =>
          e instanceof S3Error && e.code === 'InvalidDigest' && e.status === 400 && e.message === 'The Content-MD5 you specified was invalid.',
        JSON.stringify(bad),
      );
    }
  });

  test('createMd5Check passes bytes through (header string or parsed bytes)', async () => {
    const data = [randomBytes(100), randomBytes(5000)];
    const all = Buffer.concat(data);
    for (const expected of [md5b64(all), parseContentMd5(md5b64(all))]) {
      const r = await run(data, createMd5Check(expected));
      assert.equal(r.error, undefined);
      assert.deepEqual(Buffer.concat(r.got), all);
      assert.deepEqual(r.events, ['finish']);
    }
  });

  test('a mismatch fails at the end with BadDigest 400; the sink errors instead of finishing', async () => {
    const data = [randomBytes(100), randomBytes(100)];
    const r = await run(data, createMd5Check(md5b64(Buffer.from('something else'))));
    assert.ok(r.error instanceof S3Error);
    assert.equal(r.error.code, 'BadDigest');
    assert.equal(r.error.status, 400);
    assert.equal(r.error.message, 'The Content-MD5 you specified did not match what we received.');
    assert.equal(r.error.extra['CalculatedDigest'], md5b64(Buffer.concat(data)));
    assert.deepEqual(Buffer.concat(r.got), Buffer.concat(data));
    assert.deepEqual(r.events, ['error:BadDigest']);
  });

  test('createMd5Check with an invalid header throws InvalidDigest before any byte is read', () => {
    assert.throws(() => createMd5Check('not-md5'), (e: unknown) => e instanceof S3Error && e.code === 'InvalidDigest');
    assert.throws(() => createMd5Check(Buffer.alloc(15)), TypeError);
  });

  test('both checks chained: either mismatch fails the pipeline', async () => {
    const data = [randomBytes(64)];
    const all = Buffer.concat(data);
    const ok = sink();
    await pipeline(Readable.from(data), createMd5Check(md5b64(all)), createSha256Check(sha256(all)), ok.w);
    assert.deepEqual(ok.events, ['finish']);
    const s = sink();
    await assert.rejects(
      pipeline(Readable.from(data), createMd5Check(md5b64(all)), createSha256Check(sha256(Buffer.alloc(1))), s.w),
      (e: unknown) => e instanceof S3Error && e.code === 'XAmzContentSHA256Mismatch',
    );
    assert.ok(!s.events.includes('finish'));
  });
});
