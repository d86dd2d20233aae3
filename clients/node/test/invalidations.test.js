// invalidations(): resumes across a server restart from its last id, yields
// resync below the horizon, never throws it, and ends on an AbortSignal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, tempDir, writeToken, heartbeat, journalctl } from './harness.js';
import { JournalClient, UnauthorizedError } from '../index.js';

// next waits for the first event matching pred, within ms.
async function next(it, pred, ms = 8000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error('no matching event in time');
    let timer;
    const r = await Promise.race([it.next(), new Promise((res) => (timer = setTimeout(() => res({ timeout: true }), left)))]);
    clearTimeout(timer);
    if (r.timeout) throw new Error('no matching event in time');
    if (r.done) throw new Error('the iterator ended');
    if (pred(r.value)) return r.value;
  }
}

const notification = (id) => ({ source: 'runtime.notifications', surface: 'runtime_notifications', change_type: 'created', aggregate_type: 'notification', aggregate_id: id, metadata: { secret_plan: 'do-not-leak' } });

test('invalidations resume across a server restart from the last id and miss nothing', async () => {
  const tok = writeToken(tempDir());
  let srv = await startServer({ tokenFile: tok.file });
  const c = new JournalClient({ url: srv.url, tokenFile: tok.file });
  const ac = new AbortController();
  const disconnects = [];
  const it = c.invalidations({ signal: ac.signal, reconnectBaseMs: 50, reconnectMaxMs: 300, onDisconnect: (err) => disconnects.push(err?.code) });
  try {
    const first = it.next(); // opens the stream
    await new Promise((r) => setTimeout(r, 200));
    const r1 = await c.record(heartbeat('ws-a'));
    const ev = (await first).value.type === 'invalidate' ? (await first).value : await next(it, (e) => e.type === 'invalidate');
    assert.deepEqual({ type: ev.type, snapshot: ev.snapshot, sequence: ev.sequence, surfaces: ev.surfaces }, { type: 'invalidate', snapshot: 'runtime_health', sequence: r1.sequence, surfaces: ['runtime_work_session'] });
    assert.equal(it.cursor, r1.sequence);
    assert.equal(JSON.stringify(ev).includes('metadata'), false);

    // Stop the server; while it is down, a change is written to the files
    // directly (no server holds the directory); the restarted server never
    // saw it happen, so only the resume cursor can announce it.
    await srv.stop();
    const out = execFileSync(journalctl(), ['state-journal-record', '--dir', srv.dir, '--json', '--source', 'runtime.notifications', '--surface', 'runtime_notifications', '--change-type', 'created', '--aggregate-type', 'notification', '--aggregate-id', 'n-down'], { encoding: 'utf8' });
    const downSeq = JSON.parse(out.trim().split('\n').at(-1)).sequence;
    assert.equal(downSeq, r1.sequence + 1);
    srv = await srv.restart();
    const ev2 = await next(it, (e) => e.type === 'invalidate');
    assert.equal(ev2.snapshot, 'runtime_action_panel');
    assert.equal(ev2.sequence, downSeq);
    assert.deepEqual(ev2.surfaces, ['runtime_notifications']);
    assert.ok(disconnects.includes('shutdown'), `the stream saw the shutdown event: ${disconnects}`);

    // And it keeps following the new server.
    const r3 = await c.record(heartbeat('ws-b'));
    const ev3 = await next(it, (e) => e.type === 'invalidate');
    assert.equal(ev3.sequence, r3.sequence);
  } finally {
    ac.abort();
    c.close();
    await srv.stop();
  }
});

test('a cursor below the horizon yields resync as an event, then the stream goes on', async () => {
  const tok = writeToken(tempDir());
  const srv = await startServer({ tokenFile: tok.file });
  const c = new JournalClient({ url: srv.url, tokenFile: tok.file });
  const ac = new AbortController();
  try {
    await c.recordBatch(Array.from({ length: 300 }, (_, i) => heartbeat(`ws-${i}`)));
    const rep = await c.compact({ max_records: 10 });
    assert.ok(rep.horizon_after > 5);
    const it = c.invalidations({ since: 3, signal: ac.signal });
    const rs = await next(it, () => true);
    assert.equal(rs.type, 'resync');
    assert.equal(rs.reason, 'compacted');
    assert.equal(rs.horizon, rep.horizon_after);
    assert.equal(rs.head, 300);
    assert.equal(it.cursor, 300);
    const r = await c.record(notification('n-1'));
    const ev = await next(it, (e) => e.type === 'invalidate');
    assert.equal(ev.sequence, r.sequence);
    assert.equal(ev.snapshot, 'runtime_action_panel');
    assert.ok(!JSON.stringify(ev).includes('do-not-leak'));
  } finally {
    ac.abort();
    c.close();
    await srv.stop();
  }
});

test('filters by snapshot and surface; an abort ends the iterator cleanly; a wrong token throws', async () => {
  const tok = writeToken(tempDir());
  const srv = await startServer({ tokenFile: tok.file });
  const c = new JournalClient({ url: srv.url, tokenFile: tok.file });
  const ac = new AbortController();
  const seen = [];
  const loop = (async () => {
    for await (const ev of c.invalidations({ since: 0, surfaces: ['runtime_notifications'], signal: ac.signal })) seen.push(ev);
    return 'ended';
  })();
  await new Promise((r) => setTimeout(r, 200));
  await c.record(heartbeat('ws-f'));
  const r = await c.record(notification('n-f'));
  const t0 = Date.now();
  while (!seen.some((e) => e.type === 'invalidate') && Date.now() - t0 < 8000) await new Promise((res) => setTimeout(res, 25));
  const invs = seen.filter((e) => e.type === 'invalidate');
  assert.ok(invs.length >= 1);
  assert.ok(invs.every((e) => e.surfaces.includes('runtime_notifications')), JSON.stringify(invs));
  assert.ok(invs.some((e) => e.sequence === r.sequence));
  const tAbort = Date.now();
  ac.abort();
  assert.equal(await loop, 'ended');
  assert.ok(Date.now() - tAbort < 1000, 'the abort ends it at once');

  const bad = new JournalClient({ url: srv.url, token: 'wrong-token-wrong-token' });
  await assert.rejects(async () => {
    for await (const _ of bad.invalidations({})) break;
  }, (e) => e instanceof UnauthorizedError && e.code === 'unauthorized');
  c.close();
  bad.close();
  await srv.stop();
});

test('a stream that breaks before its first event resumes from the head it started at, not a later one', async () => {
  const tok = writeToken(tempDir());
  let srv = await startServer({ tokenFile: tok.file });
  const c = new JournalClient({ url: srv.url, tokenFile: tok.file });
  const ac = new AbortController();
  const it = c.invalidations({ signal: ac.signal, reconnectBaseMs: 50, reconnectMaxMs: 300 });
  try {
    await c.record(heartbeat('ws-before'));
    const pending = next(it, (e) => e.type === 'invalidate', 15_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(it.cursor, 1, 'the cursor is pinned to the head when the stream opens');
    await srv.stop();
    const out = execFileSync(journalctl(), ['state-journal-record', '--dir', srv.dir, '--json', '--source', 'runtime.notifications', '--surface', 'runtime_notifications', '--change-type', 'created', '--aggregate-type', 'notification', '--aggregate-id', 'n-gap'], { encoding: 'utf8' });
    const seq = JSON.parse(out.trim().split('\n').at(-1)).sequence;
    srv = await srv.restart();
    const ev = await pending;
    assert.equal(ev.snapshot, 'runtime_action_panel');
    assert.equal(ev.sequence, seq);
  } finally {
    ac.abort();
    c.close();
    await srv.stop();
  }
});
