// The cursor file and the subscription checks, without a server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readState, writeState } from '../lib/state.js';
import { validateSubscription, tokenMatches } from '../lib/bridge.js';
import { tempDir } from './helpers.js';

test('the cursor file round-trips, is written atomically with mode 0600, and a damaged one is named, never believed', async () => {
  const d = tempDir('sj-state-');
  const f = join(d, 'sub', 'cursor.json');
  assert.deepEqual(await readState(f), { missing: true });
  await writeState(f, { cursor: 42, journal: 'http://127.0.0.1:1' });
  assert.deepEqual(await readState(f), { cursor: 42, journal: 'http://127.0.0.1:1' });
  assert.equal(statSync(f).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(join(d, 'sub')), ['cursor.json'], 'no temp file is left behind');
  for (const [body, why] of [
    ['{"version":1,"cursor":4', /is not JSON/],
    ['[]', /is not a JSON object/],
    ['{"version":2,"cursor":4}', /has version 2/],
    ['{"version":1,"cursor":-1}', /has cursor -1/],
    ['{"version":1,"cursor":"7"}', /has cursor "7"/],
    ['', /is not JSON/],
  ]) {
    writeFileSync(f, body);
    const st = await readState(f);
    assert.match(st.damaged ?? '', why, body);
  }
  assert.equal(readFileSync(f, 'utf8'), '', 'reading changes nothing');
});

test('subscriptions are checked with errors that name the field', () => {
  const known = { snapshots: new Set(['runtime_health', 'none']), surfaces: new Set(['runtime_leases']) };
  assert.deepEqual(validateSubscription({ snapshots: ['runtime_health', 'runtime_health'] }, known).value, { snapshots: ['runtime_health'], surfaces: [] });
  assert.equal(validateSubscription({ snapshots: ['runtime_hea1th'] }, known).error.field, 'snapshots[0]');
  assert.deepEqual(validateSubscription({ snapshots: ['runtime_hea1th'] }, known).error.allowed, ['none', 'runtime_health']);
  assert.equal(validateSubscription({ surfaces: 'runtime_leases' }).error.problem, 'must be an array of ids');
  assert.match(validateSubscription({ surfaces: Array(300).fill('a') }).error.problem, /at most 256/);
  assert.equal(validateSubscription(null).error.field, 'payload');
  assert.ok(validateSubscription({ surfaces: ['anything_well_formed'] }).value, 'without a registry, form only');
});

test('tokens are compared whole', () => {
  const t = 'a-client-token-of-some-length';
  assert.equal(tokenMatches(t, t), true);
  assert.equal(tokenMatches(t.slice(0, -1), t), false);
  assert.equal(tokenMatches(t + 'x', t), false);
  assert.equal(tokenMatches(undefined, t), false);
  assert.equal(tokenMatches('', t), false);
});
