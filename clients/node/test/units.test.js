// Unit tests of the pieces that need no server: UUIDv7, the SSE parser,
// backoff, argument checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uuidv7, isUUIDv7, uuidv7Time, SSEParser, fullJitter, JournalClient } from '../index.js';

test('uuidv7 ids carry the time, the version and the variant, and sort in creation order', () => {
  const now = Date.UTC(2026, 11, 1, 12, 0, 0, 123);
  const ids = Array.from({ length: 5000 }, () => uuidv7(now));
  for (const id of ids) {
    assert.ok(isUUIDv7(id), id);
    assert.match(id[19], /[89ab]/);
  }
  assert.equal(new Set(ids).size, ids.length, 'no repeats');
  const sorted = [...ids].sort();
  assert.deepEqual(sorted, ids, 'ids made in the same millisecond sort in creation order');
  // 5000 ids cannot all fit one millisecond's 12-bit counter window
  // started at random: the clock is borrowed forward, never backward.
  assert.ok(uuidv7Time(ids[0]) === now);
  assert.ok(uuidv7Time(ids.at(-1)) >= now && uuidv7Time(ids.at(-1)) <= now + 2);
  const later = uuidv7(now - 10_000); // a clock that stepped back
  assert.ok(later > ids.at(-1), 'a clock that steps back does not reorder ids');
});

test('the SSE parser handles ids, multi-line data, comments, CRLF and chunks cut anywhere', () => {
  const stream = 'retry: 2000\r\n: a comment\r\n\r\nid: 7\r\nevent: invalidate\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: progress\ndata: {"head":7}\n\n';
  for (let cut = 1; cut < stream.length; cut++) {
    const p = new SSEParser();
    const evs = [...p.push(stream.slice(0, cut)), ...p.push(stream.slice(cut))];
    assert.deepEqual(evs, [
      { event: 'invalidate', data: '{"a":\n1}', id: '7' },
      { event: 'progress', data: '{"head":7}', id: undefined },
    ], `cut at ${cut}`);
    assert.equal(p.retryMs, 2000);
  }
});

test('full jitter stays under the exponential ceiling and the cap', () => {
  for (let a = 0; a < 40; a++) {
    for (let i = 0; i < 50; i++) {
      const d = fullJitter(a, 100, 5000);
      assert.ok(d >= 0 && d < Math.min(5000, 100 * 2 ** a), `attempt ${a}: ${d}`);
    }
  }
});

test('bad options are refused with a message naming the option', async () => {
  assert.throws(() => new JournalClient({}), /exactly one of socketPath .* and url/);
  assert.throws(() => new JournalClient({ url: 'http://127.0.0.1:1', socketPath: '/x' }), /exactly one/);
  assert.throws(() => new JournalClient({ url: 'ftp://127.0.0.1:1' }), /scheme is ftp:/);
  assert.throws(() => new JournalClient({ url: 'http://127.0.0.1:1/v1' }), /origin only/);
  assert.throws(() => new JournalClient({ url: 'http://127.0.0.1:1', token: 'short' }), /at least 16/);
  assert.throws(() => new JournalClient({ url: 'http://127.0.0.1:1', tokenFile: '/nonexistent/token' }), /no such file/);
  assert.throws(() => new JournalClient({ url: 'http://127.0.0.1:1', timeoutMs: 0 }), /timeoutMs 0/);
  const c = new JournalClient({ url: 'http://127.0.0.1:1' });
  await assert.rejects(() => c.query({ surfce: 'x' }), /surfce is not a filter; allowed: after/);
  await assert.rejects(() => c.recordBatch([]), /non-empty array/);
  await assert.rejects(() => c.record('x'), /change 0 is string/);
  assert.throws(() => c.invalidations({ since: -1 }), /since "-1" is not a sequence/);
  c.close();
});
