#!/usr/bin/env node
// Fan-out benchmark of the bridge: N admin clients (default 1,000) under a
// heartbeat storm (default 10,000 in 2 s). Reports events delivered per
// second and the delay from commit (the writer's receipt) to each client.
//   npm run bench            1,000 clients, 10,000 heartbeats in 2 s
//   npm run bench:smoke      50 clients, 1,000 heartbeats in 0.5 s
// The journal server and the bridge run as their own processes.
import { parseArgs } from 'node:util';
import { io } from 'socket.io-client';
import { JournalClient } from '@agentruntime/state-journal';
import { startServer, startBridgeProcess, tempDir, writeToken, heartbeat, freePort, sleep, join } from '../test/helpers.js';

const { values: a } = parseArgs({
  options: {
    smoke: { type: 'boolean' },
    clients: { type: 'string' },
    records: { type: 'string' },
    'storm-ms': { type: 'string' },
    'window-ms': { type: 'string' },
    json: { type: 'boolean' },
  },
});
const smoke = !!a.smoke;
const N = Number(a.clients ?? (smoke ? 50 : 1000));
const RECORDS = Number(a.records ?? (smoke ? 1000 : 10_000));
const STORM_MS = Number(a['storm-ms'] ?? (smoke ? 500 : 2000));
const WINDOW = Number(a['window-ms'] ?? 1000);
const BATCH = 100;

const pct = (xs, p) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] : NaN);

const dir = tempDir('sj-bench-');
const jtok = writeToken(dir, 'journal-token');
const ctok = writeToken(dir, 'client-token');
const srv = await startServer({ tokenFile: jtok.file });
const journal = new JournalClient({ url: srv.url, tokenFile: jtok.file });
const port = await freePort();
const bridge = await startBridgeProcess({ journal: srv.url, port, tokenFile: jtok.file, clientTokenFile: ctok.file, stateFile: join(dir, 'cursor.json'), args: ['--window-ms', String(WINDOW), '--progress-ms', '1000', '--log-level', 'warn'] });

// Connect the clients, a few at a time.
const commitAt = new Map(); // sequence -> performance.now() of its receipt
const delays = [];
let invalidates = 0;
let events = 0;
const sockets = [];
const broadcasts = new Map(); // snapshot:sequence -> first and last arrival, clients reached
const tConnect = performance.now();
for (let i = 0; i < N; i += 50) {
  const group = [];
  for (let j = i; j < Math.min(N, i + 50); j++) {
    const s = io(`${bridge.url}/admin`, { auth: { token: ctok.token }, transports: ['websocket'], reconnection: false, forceNew: true });
    sockets.push(s);
    s.onAny((name, p) => {
      events++;
      if (name !== 'invalidate') return;
      const now = performance.now();
      invalidates++;
      const key = `${p.snapshot}:${p.sequence}`;
      const g = broadcasts.get(key);
      if (g) {
        g.last = now;
        g.n++;
      } else broadcasts.set(key, { first: now, last: now, n: 1 });
      const c = commitAt.get(p.sequence);
      if (c !== undefined) delays.push(now - c);
    });
    group.push(new Promise((res, rej) => {
      s.once('connect', () => s.emit('subscribe', { snapshots: ['runtime_health', 'runtime_action_panel'], surfaces: ['runtime_socket_sessions'] }, (ack) => (ack.ok ? res() : rej(new Error(JSON.stringify(ack))))));
      s.once('connect_error', rej);
    }));
  }
  await Promise.all(group);
}
const connectMs = performance.now() - tConnect;
await sleep(500);
events = 0;

// The storm: RECORDS heartbeats in STORM_MS, with a notification and a
// socket-session change now and then (other snapshots, other rooms).
const start = performance.now();
const batches = Math.ceil(RECORDS / BATCH);
const pending = [];
for (let b = 0; b < batches; b++) {
  const due = start + (b * STORM_MS) / batches;
  const w = due - performance.now();
  if (w > 0) await sleep(w);
  const changes = Array.from({ length: Math.min(BATCH, RECORDS - b * BATCH) }, (_, i) => heartbeat(`ws-${i}`));
  if (b % 10 === 5) changes.push({ source: 'runtime.notifications', surface: 'runtime_notifications', change_type: 'created', aggregate_type: 'notification', aggregate_id: `n-${b}` });
  if (b % 10 === 7) changes.push({ source: 'runtime.socket_bridge', surface: 'runtime_socket_sessions', change_type: 'heartbeat', aggregate_type: 'socket', aggregate_id: `s-${b}` });
  pending.push(journal.recordBatch(changes).then((rs) => {
    const t = performance.now();
    for (const r of rs) commitAt.set(r.sequence, t);
  }));
}
await Promise.all(pending);
const stormMs = performance.now() - start;
// Wait for the tail: the journal's cap plus the bridge's window.
await sleep(2000 + WINDOW + 1000);
delays.sort((x, y) => x - y);
// Fan-out: how fast one broadcast reaches every client.
const spreads = [...broadcasts.values()].filter((g) => g.n > 1);
const reached = spreads.reduce((x, g) => x + g.n, 0);
const spreadMs = spreads.reduce((x, g) => x + Math.max(0.001, g.last - g.first), 0);
const perBroadcast = spreads.map((g) => g.last - g.first).sort((x, y) => x - y);
const result = {
  clients: N,
  records: RECORDS,
  storm_ms: Math.round(stormMs),
  window_ms: WINDOW,
  connect_ms: Math.round(connectMs),
  invalidates_delivered: invalidates,
  events_delivered: events,
  broadcasts: broadcasts.size,
  fanout_events_per_s: Math.round(reached / (spreadMs / 1000)),
  fanout_spread_p50_ms: Math.round(pct(perBroadcast, 50) * 10) / 10,
  fanout_spread_max_ms: Math.round((perBroadcast.at(-1) ?? NaN) * 10) / 10,
  commit_to_client_p50_ms: Math.round(pct(delays, 50)),
  commit_to_client_p99_ms: Math.round(pct(delays, 99)),
  commit_to_client_max_ms: Math.round(delays.at(-1) ?? NaN),
};
for (const s of sockets) s.close();
journal.close();
await bridge.stop();
await srv.stop();
if (a.json) console.log(JSON.stringify(result));
else {
  console.log(`bridge fan-out${smoke ? ' (smoke)' : ''}: ${N} admin clients, ${RECORDS} heartbeats in ${result.storm_ms} ms, window ${WINDOW} ms`);
  for (const [k, v] of Object.entries(result)) console.log(`  ${k.padEnd(26)} ${v}`);
}
if (!(invalidates > 0) || !Number.isFinite(result.commit_to_client_p99_ms)) {
  console.error('no invalidate reached the clients');
  process.exit(1);
}
