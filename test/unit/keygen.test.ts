import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateKey } from '../../src/keygen.ts';
import { parseCustomerKey } from '../../src/sse-c/customer-key.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

test('a random key is 32 bytes whose base64 and MD5 pass the SSE-C checks; two keys differ', () => {
  const a = generateKey();
  const b = generateKey();
  assert.equal(a.key.length, 32);
  assert.notEqual(a.base64, b.base64);
  assert.equal(a.md5, createHash('md5').update(a.key).digest('base64'));
  const parsed = parseCustomerKey(
    {
      'x-amz-server-side-encryption-customer-algorithm': 'AES256',
      'x-amz-server-side-encryption-customer-key': a.base64,
      'x-amz-server-side-encryption-customer-key-md5': a.md5,
    },
    'write',
  );
  assert.ok(parsed?.key.equals(a.key));
  assert.equal(a.scrypt, undefined);
});

test('a passphrase key is derived with scrypt: same passphrase and salt, same key; parameters are reported', () => {
  const salt = Buffer.alloc(16, 1);
  const a = generateKey({ passphrase: 'correct horse battery staple', salt });
  const b = generateKey({ passphrase: 'correct horse battery staple', salt });
  const c = generateKey({ passphrase: 'correct horse battery stapler', salt });
  assert.equal(a.base64, b.base64);
  assert.notEqual(a.base64, c.base64);
  assert.deepEqual(a.scrypt, { salt: salt.toString('base64'), N: 2 ** 17, r: 8, p: 1 });
});

test('`s3-ssec-proxy keygen --passphrase-stdin` prints the key, its MD5, the scrypt parameters and a warning', async () => {
  const out = await new Promise<string>((resolve, reject) => {
    const child = execFile(process.execPath, [join(ROOT, 'bin/s3-ssec-proxy.js'), 'keygen', '--passphrase-stdin', '--salt', 'AQEBAQEBAQEBAQEBAQEBAQ=='], (e, stdout) =>
      e ? reject(e) : resolve(stdout),
    );
    child.stdin!.end('pw\n');
  });
  const expected = generateKey({ passphrase: 'pw', salt: Buffer.from('AQEBAQEBAQEBAQEBAQEBAQ==', 'base64') });
  assert.match(out, new RegExp(`key \\(base64\\): +${expected.base64.replace(/[+/=]/g, (c) => '\\' + c)}`));
  assert.match(out, /N=131072 r=8 p=1/);
  assert.match(out, /weaker than 32 random bytes/);
});
