import assert from 'node:assert/strict';
import { test } from 'node:test';
import { S3Error } from '../../src/s3/errors.ts';
import { contentRange, parseRange, resolveRange } from '../../src/s3/range.ts';

test('parses the three single-range forms; ignores what S3 ignores', () => {
  assert.deepEqual(parseRange('bytes=0-9'), { kind: 'from', start: 0, end: 9 });
  assert.deepEqual(parseRange('bytes=10-'), { kind: 'from', start: 10 });
  assert.deepEqual(parseRange('bytes=-5'), { kind: 'suffix', length: 5 });
  for (const ignored of [undefined, 'bytes=5-1', 'bytes=0-1,3-4', 'items=0-1', 'bytes=-', 'bytes=a-b']) {
    assert.equal(parseRange(ignored), undefined, String(ignored));
  }
});

test('resolves against the size as S3 does', () => {
  const table: Array<[string, number, [number, number] | 416]> = [
    ['bytes=0-9', 100, [0, 9]],
    ['bytes=90-200', 100, [90, 99]],
    ['bytes=99-', 100, [99, 99]],
    ['bytes=100-', 100, 416],
    ['bytes=-10', 100, [90, 99]],
    ['bytes=-1000', 100, [0, 99]],
    ['bytes=-0', 100, 416],
    ['bytes=0-', 0, 416],
    ['bytes=-5', 0, 416],
  ];
  for (const [h, size, want] of table) {
    const spec = parseRange(h)!;
    if (want === 416) {
      assert.throws(() => resolveRange(spec, size), (e: unknown) => e instanceof S3Error && e.status === 416 && e.headers['content-range'] === `bytes */${size}`, h);
    } else {
      const r = resolveRange(spec, size);
      assert.deepEqual([r.start, r.end], want, h);
      assert.equal(contentRange(r, size), `bytes ${want[0]}-${want[1]}/${size}`);
    }
  }
});
