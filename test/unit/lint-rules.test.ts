/**
 * The layout's import rules (eslint.config.js) fail the lint on a violation: each case lints one line as if it
 * were in the named file and expects the rule to fire, and its allowed twin to pass.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ESLint } from 'eslint';

const eslint = new ESLint();

async function problems(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${code}\nexport const x = y;\n`, { filePath });
  return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'no-restricted-syntax').map((m) => m.message);
}

const cases: Array<[file: string, bad: string, good: string]> = [
  ['src/format/x.ts', "import { y } from '../s3/errors.ts';", "import { y } from './errors.ts';"],
  ['src/format/x.ts', "import { y } from 'undici';", "import { y } from 'node:crypto';"],
  ['src/s3/x.ts', "import { y } from '../format/tail.ts';", "import { y } from './errors.ts';"],
  ['src/sse-c/x.ts', "import { y } from '../sigv4/canonical.ts';", "import { y } from '../s3/checksums.ts';"],
  ['src/sse-c/x.ts', "import { y } from '../handlers/get.ts';", "import { y } from '../format/chunk.ts';"],
  ['src/handlers/x.ts', "import { y } from './put.ts';", "import { y } from '../objects/write.ts';"],
  ['src/handlers/x.ts', "import { y } from 'undici';", "import { y } from '../context.ts';"],
  ['src/objects/x.ts', "import { y } from '../handlers/get.ts';", "import { y } from '../format/parts.ts';"],
  ['src/objects/x.ts', "import { y } from 'undici';", "import { y } from '../context.ts';"],
  ['src/policy/x.ts', "import { y } from '../handlers/bucket-policy.ts';", "import { y } from '../s3/errors.ts';"],
  ['src/kms/x.ts', "import { y } from '../context.ts';", "import { y } from '../sse-c/data-key.ts';"],
  ['src/kms/x.ts', "import { y } from '../sse-kms/managed.ts';", "import { y } from './kms.ts';"],
  ['src/sse-kms/x.ts', "import { y } from '../objects/open.ts';", "import { y } from '../kms/kms.ts';"],
  ['src/tools/x.ts', "import { y } from '../server.ts';", "import { y } from '../objects/read.ts';"],
  ['src/tools/x.ts', "import { y } from '../handlers/copy.ts';", "import { y } from '../upstream.ts';"],
  ['src/tools/x.ts', "import { y } from '../pipeline.ts';", "import { y } from '../config.ts';"],
  ['src/tools/x.ts', "import { y } from 'undici';", "import { y } from './run.ts';"],
  ['src/passthrough.ts', "import { y } from './handlers/put.ts';", "import { y } from './context.ts';"],
  ['src/passthrough.ts', "import { y } from './sigv4/body.ts';", "import { y } from './s3/headers.ts';"],
];

for (const [file, bad, good] of cases) {
  test(`${file}: \`${bad}\` fails the lint, \`${good}\` passes`, async () => {
    assert.equal((await problems(file, bad)).length, 1, bad);
    assert.deepEqual(await problems(file, good), [], good);
  });
}

test('handlers and objects/ reach the upstream only through the counted door', async () => {
  for (const file of ['src/handlers/x.ts', 'src/objects/x.ts', 'src/tools/x.ts']) {
    const [message] = await problems(file, 'declare const ctx: any; void ctx.upstream.request({});');
    assert.match(message ?? '', /upstreamRequest/);
    assert.deepEqual(await problems(file, 'declare const ctx: any; void upstreamRequest(ctx, {});'), []);
  }
});
