/** ETags as clients see them (src/s3/etag.ts): an encrypted object's never looks like a content MD5. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { encryptedEtag, multipartEtag, partsCountOf, storeEntityTags, storeEtag, toStoreEntityTags } from '../../src/s3/etag.ts';

const md5 = createHash('md5').update('ciphertext').digest('hex');
// rclone's own test for an ETag it takes as the content's MD5 (backend/s3: matchMd5).
const RCLONE_MD5 = /^[0-9a-f]{32}$/;

test('an MD5-shaped ETag gains -0 in every form it is written in; rclone no longer takes it for an MD5', () => {
  assert.equal(encryptedEtag(`"${md5}"`), `"${md5}-0"`);
  assert.equal(encryptedEtag(md5), `${md5}-0`);
  assert.equal(encryptedEtag(`&quot;${md5}&quot;`), `&quot;${md5}-0&quot;`);
  assert.equal(encryptedEtag(`&#34;${md5}&#34;`), `&#34;${md5}-0&#34;`);
  assert.doesNotMatch(encryptedEtag(`"${md5}"`).replace(/"/g, ''), RCLONE_MD5);
  assert.ok(encryptedEtag(`"${md5}"`).includes('-'), 's3cmd and the Java SDK skip their MD5 check on a "-"');
});

test('other ETags stay as they are: multipart, empty, not hex', () => {
  for (const e of [`"${md5}-3"`, '""', '', '"abc"', `"${md5}0"`, `"${md5}-0"`]) assert.equal(encryptedEtag(e), e);
  // 32 characters that are not all hex digits, in the two spellings the short path reads.
  for (const bad of ['g', 'G', '\u0010', '/', ':', '@', '`']) {
    const e = md5.slice(0, 31) + bad;
    assert.equal(encryptedEtag(`"${e}"`), `"${e}"`, JSON.stringify(bad));
    assert.equal(encryptedEtag(`&quot;${e}&quot;`), `&quot;${e}&quot;`, JSON.stringify(bad));
  }
  assert.equal(encryptedEtag(`"${md5.toUpperCase()}"`), `"${md5.toUpperCase()}-0"`);
});

test('the suffix is stripped for the store, and only where the proxy could have added it', () => {
  assert.equal(storeEtag(`"${md5}-0"`), `"${md5}"`);
  assert.equal(storeEtag(`${md5}-0`), md5);
  assert.equal(storeEtag(`W/"${md5}-0"`), `W/"${md5}"`);
  for (const e of [`"${md5}-1"`, `"${md5}-10"`, '"abc-0"', '*', `"${md5}"`]) assert.equal(storeEtag(e), e);
  assert.equal(storeEtag(encryptedEtag(`"${md5}"`)), `"${md5}"`);
});

test('condition headers: lists and * as S3 takes them, rewritten in place', () => {
  const other = createHash('md5').update('x').digest('hex');
  assert.equal(storeEntityTags(`"${md5}-0", "${other}"`), `"${md5}", "${other}"`);
  assert.equal(storeEntityTags('*'), '*');
  const headers: Record<string, string | string[] | undefined> = {
    'if-match': `"${md5}-0"`,
    'if-none-match': `"${md5}-0"`,
    'x-amz-copy-source-if-match': `"${md5}-0"`,
    'x-amz-copy-source-if-none-match': `${md5}-0`,
    'x-amz-meta-note': `"${md5}-0"`,
  };
  toStoreEntityTags(headers);
  assert.deepEqual(headers, {
    'if-match': `"${md5}"`,
    'if-none-match': `"${md5}"`,
    'x-amz-copy-source-if-match': `"${md5}"`,
    'x-amz-copy-source-if-none-match': md5,
    'x-amz-meta-note': `"${md5}-0"`,
  });
});

test('S3 never makes a -0 ETag: a multipart one counts its parts', () => {
  assert.equal(partsCountOf(multipartEtag([`"${md5}"`])), 1);
  assert.equal(partsCountOf(`"${md5}-2"`), 2);
});
