/** The per-replica object-info cache: by ETag, the newest version per name, bounded by weight. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ObjectInfoCache } from '../../src/objects/info-cache.ts';

const part = (i: number) => ({ partNumber: i + 1, plainStart: i * 10, plainSize: 10, cipherStart: i * 130, cipherSize: 50 });

test('entries by ETag; latest() is the newest current version learned for a name', () => {
  const c = new ObjectInfoCache();
  c.set('b', 'k', '"e1"', { encrypted: true, size: 1 });
  c.set('b', 'k', '"e2"', { encrypted: false, size: 2 });
  c.set('b', 'k', '"old"', { encrypted: true, size: 3 }, false); // a versionId read: not the current version
  assert.equal(c.get('b', 'k', 'e1')?.size, 1, 'quotes do not matter');
  assert.deepEqual(c.latest('b', 'k'), { etag: '"e2"', info: { encrypted: false, size: 2 } });
  assert.equal(c.latest('b', 'other'), undefined);
});

test('the least recently used entries go once objects plus remembered parts pass the weight bound', () => {
  const c = new ObjectInfoCache(25);
  c.set('b', 'big', 'x', { encrypted: true, size: 100, parts: Array.from({ length: 10 }, (_, i) => part(i)) }); // weight 11
  c.set('b', 'a', 'y', { encrypted: true, size: 5 }); // 12
  c.get('b', 'big', 'x'); // big becomes the most recent
  c.set('b', 'huge', 'z', { encrypted: true, size: 100, parts: Array.from({ length: 12 }, (_, i) => part(i)) }); // 25: within
  c.set('b', 'c', 'w', { encrypted: true, size: 1 }); // 26 > 25: the least recent (a) goes
  assert.equal(c.get('b', 'a', 'y'), undefined);
  assert.ok(c.get('b', 'big', 'x'));
  assert.ok(c.get('b', 'huge', 'z'));
  assert.equal(c.latest('b', 'a'), undefined, 'a name whose entry went has no latest either');
});

test('knowsBucket: whether any entry of the bucket is held, through replacements and evictions', () => {
  const c = new ObjectInfoCache(1);
  assert.equal(c.knowsBucket('b'), false);
  c.set('b', 'k', '"e1"', { encrypted: true, size: 1 });
  c.set('b', 'k', '"e1"', { encrypted: true, size: 2 }); // the same entry again
  assert.equal(c.knowsBucket('b'), true);
  c.set('other', 'k', '"e2"', { encrypted: true, size: 1 }); // weight 2 > 1: b's entry goes
  assert.equal(c.get('b', 'k', 'e1'), undefined);
  assert.equal(c.knowsBucket('b'), false, 'its last entry evicted');
  assert.equal(c.knowsBucket('other'), true);
  c.set('c', 'k', '"e3"', { encrypted: true, size: 1 }, false); // not current: still an entry
  assert.equal(c.knowsBucket('c'), true);
  assert.equal(c.knowsBucket('other'), false);
});
