/**
 * Issue 11 item 2: a part belongs to its upload. Two multipart uploads to the same name under the same customer
 * key used to share a data key, so someone with write access to the store could splice a part of one into the
 * other and the object read back with 200 and the mixed content. Every upload now has its own data key (a
 * random value in its upload id, docs/MULTIPART.md): a spliced part fails to open.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { encryptedSize } from '../../src/format/layout.ts';
import { TAIL_SIZE } from '../../src/format/tail.ts';
import { bodyBytes, newKey, sse } from '../support/proxy.ts';
import { anotherProxy, startFast, uploadMultipart, type Fast } from './harness.ts';

const MiB = 1024 * 1024;
const bucket = 'binding';
const key = newKey();
let fast: Fast;
const cold: Array<Awaited<ReturnType<typeof anotherProxy>>> = [];

before(async () => {
  fast = await startFast({ buckets: [bucket] });
});
after(async () => {
  for (const c of cold) await c.proxy.close();
  await fast.close();
});

describe('two uploads to the same name under the same key', () => {
  const first = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(1000)];
  const second = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(1000)];
  let storedFirst: Buffer;

  test('have different upload ids and different ciphertext', async () => {
    const a = await uploadMultipart(fast.s3, bucket, 'same', first, key);
    storedFirst = Buffer.from(fast.double.objects.get(bucket, 'same')!.body);
    const b = await uploadMultipart(fast.s3, bucket, 'same', second, key);
    assert.notEqual(a.replace(/^.*\.ssec\d\./, ''), b.replace(/^.*\.ssec\d\./, ''));
  });

  test("part 2 of the earlier upload spliced into the later one in the store: no read returns 200 with it", async () => {
    const stored = fast.double.objects.get(bucket, 'same')!;
    assert.equal(stored.body.length, storedFirst.length, 'equal part sizes: the same byte ranges');
    // Part 2's bytes (its chunks and tail record) sit at the same offsets in both objects.
    const part = encryptedSize(5 * MiB, 65536) + TAIL_SIZE;
    const spliced = Buffer.from(stored.body);
    storedFirst.copy(spliced, part, part, 2 * part);
    stored.body = spliced;
    const mixed = Buffer.concat([second[0]!, first[1]!, second[2]!]);
    for (const s3 of [fast.s3, (await fresh()).s3]) {
      for (const range of [undefined, `bytes=${5 * MiB - 10}-${5 * MiB + 10}`, `bytes=${5 * MiB + 100}-${5 * MiB + 200}`]) {
        await assert.rejects(
          async () => {
            const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'same', ...(range ? { Range: range } : {}), ...sse(key) }));
            const got = await bodyBytes(r.Body);
            assert.ok(!got.equals(range ? mixed.subarray(...bounds(range)) : mixed), 'the mixed content was served');
            throw new Error('served');
          },
          (e: unknown) => String(e).includes('served') === false,
          String(range),
        );
      }
    }
  });
});

function bounds(range: string): [number, number] {
  const [a, b] = range.replace('bytes=', '').split('-').map(Number);
  return [a!, b! + 1];
}

async function fresh() {
  const c = await anotherProxy(fast.double);
  cold.push(c);
  return c;
}
