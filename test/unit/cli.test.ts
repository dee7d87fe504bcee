/**
 * The command line as a newcomer meets it: an older system Node is told what to run, keys never go on argv and
 * land in files only as 0600 and never over another key, serving without a store refuses instead of silently
 * using a throw-away one, and check-config finds files that are not there.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateKey } from '../../src/keygen.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/s3-ssec-proxy.js');
const dir = mkdtempSync(join(tmpdir(), 'ssec-cli-'));

function run(args: string[], opts: { node?: string; stdin?: string; env?: Record<string, string>; cwd?: string } = {}) {
  return new Promise<{ code: number; out: string; err: string }>((resolve) => {
    const child = execFile(
      opts.node ?? process.execPath,
      [BIN, ...args],
      { cwd: opts.cwd ?? dir, env: { PATH: process.env.PATH ?? '', HOME: dir, ...opts.env }, timeout: 60_000 },
      (e, out, err) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err }),
    );
    child.stdin!.end(opts.stdin ?? '');
  });
}

const systemNode = '/usr/bin/node';

test('under a Node older than 24 the bin says which command to run, instead of failing inside a dependency', async (t) => {
  const version = await new Promise<string>((resolve) => execFile(systemNode, ['-p', 'process.versions.node'], (e, out) => resolve(e ? '' : out.trim())));
  if (!version || Number(version.split('.')[0]) >= 24) return t.skip(`no older system Node at ${systemNode}`);
  const r = await run(['--help'], { node: systemNode });
  assert.equal(r.code, 3, r.err);
  assert.match(r.err, new RegExp(`needs Node 24 or later; this is Node ${version.replace(/\./g, '\\.')}`));
  assert.match(r.err, /npx s3-ssec-proxy --help/);
  assert.doesNotMatch(r.err, /TypeError/);
});

test('keygen: a passphrase on the command line is refused, saying what to use instead', async () => {
  const r = await run(['keygen', '--passphrase', 'secret words']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--passphrase-stdin/);
  assert.match(r.err, /--passphrase-file/);
  assert.equal(r.out, '');
});

test('keygen: the passphrase from standard input or from a file derives the same key as the library', async () => {
  const salt = 'AQEBAQEBAQEBAQEBAQEBAQ==';
  const expected = generateKey({ passphrase: 'correct horse', salt: Buffer.from(salt, 'base64') });
  const fromStdin = await run(['keygen', '--passphrase-stdin', '--salt', salt, '--json'], { stdin: 'correct horse\n' });
  assert.equal(fromStdin.code, 0, fromStdin.err);
  assert.equal(JSON.parse(fromStdin.out).key, expected.base64);
  const file = join(dir, 'passphrase');
  writeFileSync(file, 'correct horse\n', { mode: 0o600 });
  const fromFile = await run(['keygen', '--passphrase-file', file, '--salt', salt, '--json'], {});
  assert.equal(fromFile.code, 0, fromFile.err);
  assert.deepEqual(JSON.parse(fromFile.out), { key: expected.base64, keyMd5: expected.md5, scrypt: expected.scrypt });
});

test('keygen --out: 32 raw bytes, mode 0600, the key not printed; an existing file is never overwritten', async () => {
  const out = join(dir, 'key.bin');
  const r = await run(['keygen', '--out', out, '--json']);
  assert.equal(r.code, 0, r.err);
  const key = readFileSync(out);
  assert.equal(key.length, 32);
  assert.equal(statSync(out).mode & 0o777, 0o600);
  const doc = JSON.parse(r.out) as { file: string; keyMd5: string; key?: string };
  assert.equal(doc.file, out);
  assert.equal(doc.key, undefined);
  assert.ok(!r.out.includes(key.toString('base64')));

  const again = await run(['keygen', '--out', out]);
  assert.equal(again.code, 2);
  assert.match(again.err, /exists; not overwriting/);
  assert.ok(readFileSync(out).equals(key), 'the first key is intact');
});

test('serve without an upstream refuses to start, naming the setting and --embedded; --embedded is explicit', async () => {
  const r = await run(['serve'], { env: { SSEC_PROXY_LISTEN: '127.0.0.1:0', SSEC_PROXY_STATE_DIR: join(dir, '.state') } });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /SSEC_PROXY_UPSTREAM_URL: no upstream S3 store is set/);
  assert.match(r.err, /--embedded/);
  assert.doesNotMatch(r.err, /listening on/);
  assert.ok(!existsSync(join(dir, '.state', 's3')), 'no embedded store was started');
  const ok = await run(['check-config', '--embedded']);
  assert.equal(ok.code, 0, ok.err);
});

test('check-config on config/example.json reports its TLS files that do not exist, by file and field', async () => {
  const example = join(ROOT, 'config/example.json');
  const r = await run(['check-config', '--config', example]);
  assert.notEqual(r.code, 0);
  assert.match(r.err, new RegExp(`config file ${example.replace(/[.]/g, '\\.')}: tls\\.cert: /etc/s3-ssec-proxy/tls/cert\\.pem does not exist`));
  assert.match(r.err, /tls\.key: .* does not exist/);
  assert.doesNotMatch(r.out, /OK/);
});

test('an unknown option or command is a usage error (exit 2) naming it', async () => {
  const r = await run(['check-config', '--embeded']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--embeded/);
  const c = await run(['chek-config']);
  assert.equal(c.code, 2);
  assert.match(c.err, /unknown command "chek-config"/);
});

test('a checkout whose sources changed since its last build runs them, not the stale dist/; a current dist/ or one without sources runs', async () => {
  const app = mkdtempSync(join(tmpdir(), 'ssec-bin-'));
  for (const d of ['bin', 'src', 'dist']) mkdirSync(join(app, d));
  copyFileSync(BIN, join(app, 'bin/s3-ssec-proxy.js'));
  symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'));
  writeFileSync(join(app, 'dist/main.js'), "console.log('dist');\n");
  writeFileSync(join(app, 'src/main.ts'), "const from: string = 'sources';\nconsole.log(from);\n");
  const at = (path: string, seconds: number) => utimesSync(join(app, path), seconds, seconds);
  const bin = join(app, 'bin/s3-ssec-proxy.js');
  const out = (): Promise<string> => new Promise((resolve) => execFile(process.execPath, [bin], { cwd: app }, (_e, stdout) => resolve(stdout.trim())));
  at('dist/main.js', 1_000_000);
  at('src/main.ts', 2_000_000);
  assert.equal(await out(), 'sources', 'a source edited after the build');
  at('dist/main.js', 3_000_000);
  assert.equal(await out(), 'dist', 'a build after the last edit');
  rmSync(join(app, 'src'), { recursive: true });
  at('dist/main.js', 1_000_000);
  assert.equal(await out(), 'dist', 'no sources (the image)');
});
