// record, recordBatch, query, status and surfaces against the real server,
// over TCP with a token and over the Unix socket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, tempDir, writeToken, heartbeat } from './harness.js';
import { JournalClient, isUUIDv7, isJournalError, ValidationError, UnauthorizedError, CompactedError } from '../index.js';

let srv;
let tok;

before(async () => {
  tok = writeToken(tempDir());
  srv = await startServer({ tokenFile: tok.file });
});
after(() => srv?.stop());

for (const transport of ['tcp', 'unix']) {
  test(`record, recordBatch, query, status and surfaces over ${transport}`, async () => {
    const c = transport === 'tcp' ? new JournalClient({ url: srv.url, tokenFile: tok.file }) : new JournalClient({ socketPath: srv.socketPath, token: tok.token });
    try {
      const r = await c.record(heartbeat(`ws-${transport}`));
      assert.ok(isUUIDv7(r.event_id), r.event_id);
      assert.equal(r.surface, 'runtime_work_session');
      assert.equal(r.durable, true);
      assert.equal(r.duplicate, false);

      const batch = Array.from({ length: 20 }, (_, i) => heartbeat(`ws-${transport}-${i}`));
      const rs = await c.recordBatch(batch);
      assert.equal(rs.length, 20);
      for (let i = 1; i < rs.length; i++) assert.equal(rs[i].sequence, rs[i - 1].sequence + 1, 'receipts in order');
      assert.equal(rs[0].sequence, r.sequence + 1);
      assert.equal(new Set(rs.map((x) => x.event_id)).size, 20);
      assert.equal(batch[0].event_id, undefined, 'the caller\'s objects are not changed');

      const page = await c.query({ after: r.sequence, surfaces: ['runtime_work_session'], limit: 5 });
      assert.equal(page.order, 'oldest');
      assert.deepEqual(page.changes.map((x) => x.sequence), rs.slice(0, 5).map((x) => x.sequence));
      assert.equal(page.more, true);
      assert.equal(page.resume_after, rs[4].sequence);
      const one = await c.query({ aggregate_type: 'work_session', aggregate_id: `ws-${transport}-7` });
      assert.equal(one.changes.length, 1);
      assert.equal(one.changes[0].event_id, rs[7].event_id);

      const st = await c.status();
      assert.ok(st.last_sequence >= rs.at(-1).sequence);
      const sf = await c.surfaces();
      const ws = sf.surfaces.find((s) => s.id === 'runtime_work_session');
      assert.ok(ws && ws.registered && ws.live.records >= 21);
    } finally {
      c.close();
    }
  });
}

test('a retried event id answers the first receipt and writes nothing', async () => {
  const c = new JournalClient({ url: srv.url, tokenFile: tok.file });
  const first = await c.record({ ...heartbeat('ws-dup'), event_id: undefined });
  const again = await c.record({ ...heartbeat('ws-dup'), event_id: first.event_id, occurred_at: first.occurred_at });
  assert.equal(again.duplicate, true);
  assert.equal(again.sequence, first.sequence);
  const all = await c.query({ aggregate_type: 'work_session', aggregate_id: 'ws-dup' });
  assert.equal(all.changes.length, 1);
  c.close();
});

test('errors carry the server\'s stable codes and fields', async () => {
  const c = new JournalClient({ url: srv.url, tokenFile: tok.file });
  const bad = await c.record({ ...heartbeat(), surface: 'runtime_work_sesion' }).catch((e) => e);
  assert.ok(bad instanceof ValidationError, bad);
  assert.equal(bad.code, 'unknown_surface');
  assert.equal(bad.status, 400);
  assert.equal(bad.field, 'surface');
  assert.equal(bad.suggestion, 'runtime_work_session');
  assert.equal(bad.outcomeUnknown, false, 'a refused write was not written');
  assert.ok(isJournalError(bad, 'unknown_surface'));

  const inBatch = await c.recordBatch([heartbeat(), { ...heartbeat(), change_type: 'exploded' }]).catch((e) => e);
  assert.equal(inBatch.code, 'invalid_change');
  assert.equal(inBatch.index, 1);
  assert.equal(inBatch.field, 'change_type');

  const q = await c.query({ order: 'sideways' }).catch((e) => e);
  assert.equal(q.code, 'invalid_query');
  assert.deepEqual(q.allowed, ['newest', 'oldest']);

  const noToken = new JournalClient({ url: srv.url });
  const u = await noToken.status().catch((e) => e);
  assert.ok(u instanceof UnauthorizedError, u);
  assert.equal(u.code, 'unauthorized');
  assert.equal(u.attempts, 1);
  const wrong = new JournalClient({ url: srv.url, token: 'not-the-token-at-all-0123' });
  assert.equal((await wrong.query({}).catch((e) => e)).code, 'unauthorized');
  // The probes need no token.
  assert.equal((await noToken.ready()).status, 'ready');
  noToken.close();
  wrong.close();
  c.close();
});

test('a cursor below the horizon is a CompactedError carrying where to resume', async () => {
  const s2 = await startServer({ tokenFile: tok.file });
  const c = new JournalClient({ url: s2.url, tokenFile: tok.file });
  try {
    await c.recordBatch(Array.from({ length: 200 }, (_, i) => heartbeat(`ws-${i}`)));
    const rep = await c.compact({ max_records: 10 });
    assert.ok(rep.horizon_after > 2, JSON.stringify(rep).slice(0, 300));
    const err = await c.query({ after: 1 }).catch((e) => e);
    assert.ok(err instanceof CompactedError, err);
    assert.equal(err.status, 410);
    assert.equal(err.horizon, rep.horizon_after);
    assert.equal(err.resumeAfter, rep.horizon_after - 1);
  } finally {
    c.close();
    await s2.stop();
  }
});
