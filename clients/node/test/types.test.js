// The TypeScript declarations compile under --strict against a program that
// uses every part of the API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));

test('index.d.ts type-checks a program using the whole API', () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const args = [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', join(here, 'types-check.ts')];
  let out = '';
  try {
    execFileSync(process.execPath, args, { cwd: join(here, '..'), encoding: 'utf8' });
  } catch (err) {
    out = `${err.stdout}${err.stderr}`;
  }
  assert.equal(out, '', out);
});
