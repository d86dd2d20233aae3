// Retries are exactly-once: a write whose answer was lost, or whose server
// was killed mid-request and restarted, is retried with the same event ids
// and the journal holds each record once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { startServer, tempDir, writeToken, heartbeat, freePort } from './harness.js';
import { JournalClient, UnavailableError } from '../index.js';

// proxy forwards TCP to the server's port; hooks see the first connection.
async function proxy(upstreamPort, { onRequest, onResponse } = {}) {
  let first = true;
  const srv = net.createServer((down) => {
    const isFirst = first;
    first = false;
    const up = net.connect(upstreamPort, '127.0.0.1');
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
    down.on('data', (c) => {
      up.write(c);
      if (isFirst && onRequest) onRequest(up, down);
    });
    up.on('data', (c) => {
      if (isFirst && onResponse) return onResponse(up, down);
      down.write(c);
    });
    up.on('end', () => down.end());
    down.on('end', () => up.end());
  });
  const port = await freePort();
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, close: () => srv.close() };
}

async function countByEventId(c, ids) {
  const seen = new Map(ids.map((id) => [id, 0]));
  let after = 0;
  for (;;) {
    const page = await c.query({ after, limit: 1000 });
    for (const ch of page.changes) if (seen.has(ch.event_id)) seen.set(ch.event_id, seen.get(ch.event_id) + 1);
    if (!page.more) break;
    after = page.resume_after;
  }
  return seen;
}

test('a lost answer, then a server restart between attempts: the retry answers duplicate and the journal holds one record', async () => {
  const tok = writeToken(tempDir());
  let srv = await startServer({ tokenFile: tok.file });
  let restarted;
  const px = await proxy(srv.port, {
    onResponse: (up, down) => {
      // The server wrote the batch and answered: the client never hears it,
      // and the server dies before the retry.
      down.destroy();
      up.destroy();
      restarted ??= srv.kill().then(() => srv.restart()).then((s) => (srv = s));
    },
  });
  const c = new JournalClient({ url: px.url, tokenFile: tok.file, retries: 12, retryBaseMs: 50, retryMaxMs: 800 });
  try {
    const batch = Array.from({ length: 50 }, (_, i) => heartbeat(`ws-lost-${i}`));
    const rs = await c.recordBatch(batch);
    await restarted;
    assert.equal(rs.length, 50);
    assert.ok(rs.every((r) => r.duplicate === true), 'the retry found the first attempt\'s records');
    const seqs = rs.map((r) => r.sequence);
    assert.deepEqual(seqs, Array.from({ length: 50 }, (_, i) => seqs[0] + i), 'the original sequences');
    const direct = new JournalClient({ url: srv.url, tokenFile: tok.file });
    const counts = await countByEventId(direct, rs.map((r) => r.event_id));
    assert.ok([...counts.values()].every((n) => n === 1), `each record once: ${[...counts.values()]}`);
    direct.close();
  } finally {
    c.close();
    px.close();
    await srv.stop();
  }
});

test('the server killed while a request is in flight: the retry after its restart is exactly-once', async () => {
  const tok = writeToken(tempDir());
  let srv = await startServer({ tokenFile: tok.file });
  let restarted;
  const px = await proxy(srv.port, {
    onRequest: () => {
      restarted ??= srv.kill().then(() => srv.restart()).then((s) => (srv = s));
    },
  });
  const c = new JournalClient({ url: px.url, tokenFile: tok.file, retries: 12, retryBaseMs: 50, retryMaxMs: 800 });
  try {
    const batch = Array.from({ length: 500 }, (_, i) => heartbeat(`ws-flight-${i}`));
    const rs = await c.recordBatch(batch);
    await restarted;
    assert.ok(rs.every((r, i) => i === 0 || r.sequence === rs[i - 1].sequence + 1));
    const direct = new JournalClient({ url: srv.url, tokenFile: tok.file });
    const counts = await countByEventId(direct, rs.map((r) => r.event_id));
    assert.equal(counts.size, 500);
    assert.ok([...counts.values()].every((n) => n === 1), 'each record once');
    direct.close();
  } finally {
    c.close();
    px.close();
    await srv.stop();
  }
});

test('with no server the error says nothing was sent, after the retries, carrying the changes to retry with', async () => {
  const port = await freePort();
  const c = new JournalClient({ url: `http://127.0.0.1:${port}`, retries: 2, retryBaseMs: 5, retryMaxMs: 10 });
  const err = await c.recordBatch([heartbeat()]).catch((e) => e);
  assert.ok(err instanceof UnavailableError, err);
  assert.equal(err.code, 'unavailable');
  assert.equal(err.attempts, 3);
  assert.equal(err.outcomeUnknown, false, 'refused connections never carried the request');
  assert.equal(err.changes.length, 1);
  assert.match(err.changes[0].event_id, /^[0-9a-f-]{36}$/);
  c.close();
});

// The server on main does not rate-limit yet; a stand-in answers 429 and
// 503 journal_failed the way SPEC section 8 and the server's error table say.
test('429 is retried after Retry-After; a failed journal (503 journal_failed) is not retried and is an unknown outcome', async () => {
  let calls = 0;
  const fake = http.createServer((req, res) => {
    calls++;
    req.resume();
    if (req.url === '/v1/changes' && calls === 1) {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
      return res.end('{"error":{"code":"rate_limited","message":"slow down"}}');
    }
    if (req.url === '/v1/changes' && calls === 2) {
      res.writeHead(201, { 'content-type': 'application/json' });
      return res.end('{"receipts":[{"sequence":1,"event_id":"x","duplicate":false}]}');
    }
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"journal_failed","message":"fsync failed"}}');
  });
  const port = await freePort();
  await new Promise((r) => fake.listen(port, '127.0.0.1', r));
  const c = new JournalClient({ url: `http://127.0.0.1:${port}`, retries: 3, retryBaseMs: 5 });
  try {
    const t0 = Date.now();
    const r = await c.record(heartbeat());
    assert.equal(r.sequence, 1);
    assert.equal(calls, 2);
    assert.ok(Date.now() - t0 >= 1000, 'waited for Retry-After');
    const st = await c.status().catch((e) => e);
    assert.equal(st.code, 'journal_failed');
    assert.equal(st.attempts, 1);
    assert.equal(calls, 3);
    assert.equal(st.outcomeUnknown, false, 'a read has no outcome to doubt');
    const w = await c.recordBatch([heartbeat('a'), heartbeat('b')]).catch((e) => e);
    assert.equal(w.code, 'journal_failed');
    assert.equal(w.attempts, 1, 'a failed journal is not retried: it stays failed until reopened');
    assert.equal(w.outcomeUnknown, true, 'a failed batch may be partly on disk');
    assert.equal(w.changes.length, 2, 'the changes with their event ids, to retry exactly-once');
    assert.equal(calls, 4);
  } finally {
    c.close();
    fake.close();
  }
});
