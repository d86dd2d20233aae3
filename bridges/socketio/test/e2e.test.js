// End to end: the real Go journal server, the bridge as a process, and
// socket.io-client admin clients (SPEC section 9, issue 11 acceptance 1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { JournalClient } from '@agentruntime/state-journal';
import { startServer, startBridgeProcess, admin, until, tempDir, writeToken, heartbeat, freePort, sleep, join } from './helpers.js';

const WINDOW = 1000; // the bridge's coalescing window
const SERVER_MAX_DELAY = 2000; // the journal's default cap on holding back an invalidation
const CAP = SERVER_MAX_DELAY + WINDOW + 750; // staleness cap at the client, with slack for a loaded machine
// Distinctive metadata values: none may ever reach an admin client.
const MARKERS = ['zebra-marker-in-metadata', 'quokka-marker-in-metadata'];

let dir;
let jtok;
let ctok;
let srv;
let bridge;
let bridgePort;
let stateFile;
let journal;
const clients = [];

const startTheBridge = () =>
  startBridgeProcess({ journal: srv.url, port: bridgePort, tokenFile: jtok.file, clientTokenFile: ctok.file, stateFile, args: ['--window-ms', String(WINDOW), '--progress-ms', '300', '--resync-spread-ms', '2000', '--reconnect-max-ms', '300'] });

before(async () => {
  dir = tempDir('sj-bridge-');
  jtok = writeToken(dir, 'journal-token');
  ctok = writeToken(dir, 'client-token');
  stateFile = join(dir, 'bridge', 'cursor.json');
  srv = await startServer({ tokenFile: jtok.file });
  journal = new JournalClient({ url: srv.url, tokenFile: jtok.file });
  bridgePort = await freePort();
  bridge = await startTheBridge();
});

after(async () => {
  for (const c of clients) c.socket.close();
  journal?.close();
  await bridge?.stop();
  await srv?.stop();
});

function noMarkers(events) {
  for (const e of events) for (const m of MARKERS) assert.ok(!e.raw.includes(m), `${e.name} carries record metadata: ${e.raw}`);
}

function payloadsCarryASequence(events) {
  for (const e of events) {
    if (e.name === 'connect') continue;
    assert.equal(typeof e.payload, 'object', `${e.name} payload is an object`);
    assert.ok(Number.isInteger(e.payload.sequence), `${e.name} payload carries a sequence: ${e.raw}`);
  }
}

test('a wrong token, or none, is refused', async () => {
  for (const auth of [{ token: 'wrong-wrong-wrong-wrong' }, {}]) {
    const s = io(`${bridge.url}/admin`, { auth, transports: ['websocket'], reconnection: false });
    const err = await new Promise((res) => {
      s.on('connect', () => res(null));
      s.on('connect_error', res);
    });
    s.close();
    assert.ok(err, 'connected with a wrong token');
    assert.equal(err.message, 'unauthorized');
    assert.equal(err.data?.code, 'unauthorized');
  }
});

test('subscribe answers its ack; bad subscriptions get clear errors', async () => {
  const c = admin(bridge.url, ctok.token, null);
  clients.push(c);
  await until(() => c.socket.connected, 5000, 'connect');
  const ask = (p) => new Promise((res) => c.socket.emit('subscribe', p, res));
  const ok = await ask({ snapshots: ['runtime_health'], surfaces: ['runtime_leases'] });
  assert.equal(ok.ok, true);
  assert.deepEqual(ok.rooms, ['snapshot:runtime_health', 'surface:runtime_leases']);
  assert.ok(Number.isInteger(ok.sequence));
  const notObj = await ask('runtime_health');
  assert.equal(notObj.ok, false);
  assert.equal(notObj.error.code, 'invalid_subscription');
  assert.match(notObj.error.message, /payload must be an object/);
  const empty = await ask({});
  assert.match(empty.error.message, /names no snapshot and no surface/);
  const extra = await ask({ rooms: ['x'] });
  assert.deepEqual([extra.error.field, extra.error.allowed], ['rooms', ['snapshots', 'surfaces']]);
  const badId = await ask({ surfaces: ['a b'] });
  assert.equal(badId.error.field, 'surfaces[0]');
  await until(() => c.events.some((e) => e.name === 'progress'), 5000, 'progress');
  const unknown = await ask({ surfaces: ['runtime_leasez'] });
  assert.equal(unknown.error.field, 'surfaces[0]');
  assert.ok(unknown.error.allowed.includes('runtime_leases'));
  // A fresh connection was not recovered: it is told to refetch.
  const rs = c.events.find((e) => e.name === 'resync');
  assert.equal(rs.payload.reason, 'not_recovered');
  assert.ok(rs.payload.delay_ms >= 0 && rs.payload.delay_ms < 2000);
  c.socket.close();
});

test('a storm of 10,000 heartbeats in 2 s: at most one invalidate per snapshot per window, at least one per staleness cap', async (t) => {
  const c = admin(bridge.url, ctok.token, { snapshots: ['runtime_health'], surfaces: ['runtime_notifications'] });
  clients.push(c);
  await until(() => c.acks.length === 1, 5000, 'subscribe ack');
  await sleep(300);
  // Four bursts of 2,500, 500 ms apart: the journal goes quiet between
  // them long enough to announce each, so the bridge's window must coalesce.
  const start = performance.now();
  let last;
  const sent = [];
  for (let b = 0; b < 100; b++) {
    const due = start + Math.floor(b / 25) * 500 + (b % 25) * 4;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const batch = Array.from({ length: 100 }, (_, i) => heartbeat(`ws-${i}`, { note: MARKERS[0], step: b }));
    sent.push(journal.recordBatch(batch).then((rs) => (last = Math.max(last ?? 0, rs.at(-1).sequence))));
    if (b === 50) sent.push(journal.record({ source: 'runtime.notifications', surface: 'runtime_notifications', change_type: 'created', aggregate_type: 'notification', aggregate_id: 'n-storm', metadata: { note: MARKERS[1] } }));
  }
  await Promise.all(sent);
  const stormEnd = performance.now();
  const stormMs = stormEnd - start;
  await until(() => c.events.some((e) => e.name === 'invalidate' && e.payload.snapshot === 'runtime_health' && e.payload.sequence >= last), CAP + 2000, 'the storm\'s last invalidate');
  const inv = c.events.filter((e) => e.name === 'invalidate' && e.at >= start);
  const health = inv.filter((e) => e.payload.snapshot === 'runtime_health');
  // At most one per window (the bridge spaces them by WINDOW; 5% slack for timer and network jitter).
  for (let i = 1; i < health.length; i++) assert.ok(health[i].at - health[i - 1].at >= WINDOW * 0.95, `two invalidates ${Math.round(health[i].at - health[i - 1].at)} ms apart`);
  // At least one per staleness cap, from the first heartbeat to the last.
  assert.ok(health[0].at - start <= CAP, `first invalidate ${Math.round(health[0].at - start)} ms after the storm began`);
  for (let i = 1; i < health.length; i++) assert.ok(health[i].at - health[i - 1].at <= CAP, `a gap of ${Math.round(health[i].at - health[i - 1].at)} ms`);
  assert.ok(health.at(-1).at - stormEnd <= CAP, 'the last change is announced within the cap');
  assert.ok(health.length <= Math.ceil((health.at(-1).at - start) / WINDOW) + 1, `${health.length} invalidates`);
  assert.ok(health.every((e) => e.payload.surfaces.includes('runtime_work_session')));
  // The notification reached its surface room.
  assert.ok(inv.some((e) => e.payload.surfaces.includes('runtime_notifications')), 'the notification was announced');
  noMarkers(c.events);
  payloadsCarryASequence(c.events);
  assert.ok(health.length >= 2, `the bursts were announced more than once (${health.length})`);
  t.diagnostic(`storm: 10000 heartbeats in ${Math.round(stormMs)} ms; ${health.length} runtime_health invalidates at the client, ${health.map((e) => Math.round(e.at - start)).join(', ')} ms after the start`);
  c.socket.close();
});

test('a client that reconnects misses nothing (recovered, with the missed invalidate replayed)', async () => {
  const c = admin(bridge.url, ctok.token, { snapshots: ['runtime_action_panel'] }, { reconnectionDelay: 1200, reconnectionDelayMax: 1200, randomizationFactor: 0 });
  clients.push(c);
  await until(() => c.acks.length === 1, 5000, 'subscribe ack');
  await until(() => c.events.filter((e) => e.name === 'progress').length >= 2, 5000, 'progress offsets');
  c.socket.io.engine.close(); // the network drops; socket.io-client reconnects by itself
  const r = await journal.record({ source: 'runtime.notifications', surface: 'runtime_notifications', change_type: 'created', aggregate_type: 'notification', aggregate_id: 'n-away', metadata: { note: MARKERS[1] } });
  await until(() => c.events.filter((e) => e.name === 'connect').length >= 2, 8000, 'reconnect');
  const re = c.events.filter((e) => e.name === 'connect')[1];
  assert.equal(re.recovered, true, 'progress kept the offset fresh: the session was recovered');
  await until(() => c.events.some((e) => e.name === 'invalidate' && e.payload.snapshot === 'runtime_action_panel' && e.payload.sequence >= r.sequence), 6000, 'the missed invalidate');
  noMarkers(c.events);
  c.socket.close();
});

test('a bridge killed and restarted misses nothing: it resumes from its saved cursor', async () => {
  const c = admin(bridge.url, ctok.token, { snapshots: ['runtime_health', 'runtime_action_panel'] });
  clients.push(c);
  await until(() => c.acks.length === 1, 5000, 'subscribe ack');
  await bridge.kill(); // a crash: no chance to save anything more
  // Changes while the bridge is down.
  const h = await journal.record(heartbeat('ws-down', { note: MARKERS[0] }));
  const n = await journal.record({ source: 'runtime.notifications', surface: 'runtime_notifications', change_type: 'created', aggregate_type: 'notification', aggregate_id: 'n-down', metadata: { note: MARKERS[1] } });
  // Hold the journal back until the client is back and subscribed, so that
  // only the resumed cursor (not a resync) can announce those changes.
  await srv.stop();
  bridge = await startTheBridge();
  assert.ok(bridge.logs.some((l) => l.msg === 'resuming from the saved cursor' && l.cursor < h.sequence), JSON.stringify(bridge.logs));
  await until(() => c.acks.length >= 2 && c.acks.at(-1).ok, 8000, 'resubscribed');
  const back = c.events.filter((e) => e.name === 'connect').at(-1);
  assert.equal(back.recovered, false, 'a new bridge process cannot recover the session');
  assert.ok(c.events.some((e) => e.name === 'resync' && e.payload.reason === 'not_recovered' && e.at >= back.at), 'the unrecovered client is told to refetch');
  const mark = performance.now();
  srv = await srv.restart();
  await until(() => ['runtime_health', 'runtime_action_panel'].every((s) => c.events.some((e) => e.name === 'invalidate' && e.at >= mark && e.payload.snapshot === s)), 10_000, 'both snapshots changed meanwhile');
  const got = (s) => c.events.filter((e) => e.name === 'invalidate' && e.at >= mark && e.payload.snapshot === s).at(-1).payload.sequence;
  assert.ok(got('runtime_health') >= h.sequence);
  assert.ok(got('runtime_action_panel') >= n.sequence);
  noMarkers(c.events);
  payloadsCarryASequence(c.events);
  c.socket.close();
});

test('resync arrives when compaction moved the horizon past the bridge\'s saved cursor', async () => {
  const c = admin(bridge.url, ctok.token, { snapshots: ['runtime_health'] });
  clients.push(c);
  await until(() => c.acks.length === 1, 5000, 'subscribe ack');
  await sleep(500); // let the cursor file catch up
  await bridge.stop();
  await journal.recordBatch(Array.from({ length: 300 }, (_, i) => heartbeat(`ws-c${i}`, { note: MARKERS[0] })));
  const rep = await journal.compact({ max_records: 10 });
  const saved = bridge.logs.find((l) => l.msg === 'closed').cursor;
  assert.ok(rep.horizon_after > saved + 1, `horizon ${rep.horizon_after} vs saved cursor ${saved}`);
  const head = (await journal.status()).last_sequence;
  await srv.stop();
  bridge = await startTheBridge();
  await until(() => c.acks.length >= 2 && c.acks.at(-1).ok, 8000, 'resubscribed');
  const mark = performance.now();
  srv = await srv.restart();
  await until(() => c.events.some((e) => e.name === 'resync' && e.at >= mark), 10_000, 'resync');
  const rs = c.events.find((e) => e.name === 'resync' && e.at >= mark).payload;
  assert.equal(rs.reason, 'compacted');
  assert.equal(rs.horizon, rep.horizon_after);
  assert.equal(rs.head, head);
  assert.equal(rs.sequence, head);
  assert.ok(rs.delay_ms >= 0 && rs.delay_ms < 2000);
  noMarkers(c.events);
  payloadsCarryASequence(c.events);
  c.socket.close();
});
