// The Socket.IO bridge: consumes the journal's invalidation stream with
// @agentruntime/state-journal and tells admin clients on namespace /admin
// what to refetch. Invalidation-only: no record content or metadata ever
// crosses; every payload is an object carrying a sequence.
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Server } from 'socket.io';
import { JournalClient, fullJitter } from '@agentruntime/state-journal';
import { readState, writeState, quarantine } from './state.js';

export const NAMESPACE = '/admin';
const ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const MAX_IDS = 256;

/** Defaults of the bridge's timing options, in ms. */
export const DEFAULTS = Object.freeze({
  windowMs: 1000, // at most one invalidate per snapshot per window
  progressMs: 5000, // a progress to everyone this often
  resyncSpreadMs: 5000, // resync delay_ms is drawn from [0, this)
  maxDisconnectionMs: 120_000, // connection state recovery keeps sessions this long
  reconnectBaseMs: 200, // the journal stream's full-jitter reconnects
  reconnectMaxMs: 10_000,
  stateWriteMs: 200, // the cursor file is rewritten at most this often
});

function digest(s) {
  return createHash('sha256').update(String(s)).digest();
}

/** tokenMatches compares in constant time (of SHA-256 digests, so length does not leak). */
export function tokenMatches(given, want) {
  if (typeof given !== 'string' || given === '') return false;
  return timingSafeEqual(digest(given), digest(want));
}

function nowMs() {
  return performance.timeOrigin + performance.now();
}

/**
 * validateSubscription checks a subscribe payload: {snapshots?: [...],
 * surfaces?: [...]}, at least one id, each a well-formed id (and, when the
 * bridge knows the registry, a known one).
 */
export function validateSubscription(p, known) {
  const fail = (field, problem, extra = {}) => ({ error: { code: 'invalid_subscription', field, problem, message: `${field} ${problem}`, ...extra } });
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return fail('payload', 'must be an object {snapshots: [...], surfaces: [...]}');
  for (const k of Object.keys(p)) {
    if (k !== 'snapshots' && k !== 'surfaces') return fail(k, 'is not a subscription field', { allowed: ['snapshots', 'surfaces'] });
  }
  const out = { snapshots: [], surfaces: [] };
  for (const field of ['snapshots', 'surfaces']) {
    const v = p[field];
    if (v === undefined) continue;
    if (!Array.isArray(v)) return fail(field, 'must be an array of ids');
    if (v.length > MAX_IDS) return fail(field, `lists ${v.length} ids, at most ${MAX_IDS} are allowed`);
    for (const [i, id] of v.entries()) {
      if (typeof id !== 'string' || !ID.test(id)) return fail(`${field}[${i}]`, `${JSON.stringify(id)?.slice(0, 140)} is not an id (1-128 of A-Z a-z 0-9 _ . : -)`);
      const set = known?.[field];
      if (set && !set.has(id)) return fail(`${field}[${i}]`, `${JSON.stringify(id)} is not a known ${field === 'snapshots' ? 'snapshot' : 'surface'}`, { value: id, allowed: [...set].sort() });
      if (!out[field].includes(id)) out[field].push(id);
    }
  }
  if (out.snapshots.length + out.surfaces.length === 0) return fail('payload', 'names no snapshot and no surface; give snapshots: [...] or surfaces: [...]');
  return { value: out };
}

/**
 * Bridge is one running bridge. start() listens and begins consuming the
 * journal; close() stops both and saves the cursor.
 */
export class Bridge {
  #opt;
  #log;
  #journal;
  #http;
  #io;
  #nsp;
  #abort = new AbortController();
  #closed = false;
  #loop;
  #progressTimer;
  // The stream's resume cursor (every change up to it announced by the journal).
  #streamCursor;
  // Snapshots held back by the coalescing window: id -> {sequence, surfaces, after, timer}.
  #held = new Map();
  #lastEmit = new Map();
  #head = 0;
  #horizon = 0;
  #resyncEpoch = 0;
  #cursorLost = false;
  #known;
  #stateDirty = false;
  #stateTimer;
  #stateWrite = Promise.resolve();
  #savedCursor;
  /** stats counts what the bridge did (for tests, benchmarks and logs). */
  stats = { invalidatesIn: 0, invalidatesOut: 0, resyncs: 0, progress: 0, connections: 0, refused: 0, journalConnects: 0 };
  port;

  /**
   * options: journal ({url} or {socketPath}, plus token or tokenFile),
   * listen {host, port}, clientToken, stateFile, and the timings of DEFAULTS.
   */
  constructor(options) {
    const o = { ...DEFAULTS, ...options };
    if (!o.journal || (!o.journal.url === !o.journal.socketPath)) throw new TypeError('bridge: journal needs exactly one of url and socketPath');
    if (typeof o.clientToken !== 'string' || o.clientToken.length < 16) throw new TypeError('bridge: clientToken (for admin clients) must be at least 16 characters');
    if (!o.stateFile) throw new TypeError('bridge: stateFile is required (where the cursor is kept)');
    for (const k of Object.keys(DEFAULTS)) {
      if (!Number.isInteger(o[k]) || o[k] < 1) throw new TypeError(`bridge: ${k} ${JSON.stringify(o[k])} is not a positive integer (ms)`);
    }
    this.#opt = o;
    this.#log = o.logger ?? (() => {});
    this.#journal = new JournalClient({ ...o.journal, timeoutMs: o.journalTimeoutMs ?? 10_000, retries: 3 });
  }

  get cursor() {
    return this.#safeCursor();
  }

  // The cursor a restarted bridge may resume from: nothing after it is held back.
  #safeCursor() {
    let c = this.#streamCursor;
    for (const h of this.#held.values()) c = c === undefined ? h.after : Math.min(c, h.after);
    return c;
  }

  async start() {
    const st = await readState(this.#opt.stateFile);
    if (st.damaged) {
      const aside = await quarantine(this.#opt.stateFile);
      this.#cursorLost = true;
      this.#log('error', 'state file damaged; starting from the journal head and telling every client to resync', { file: this.#opt.stateFile, problem: st.damaged, kept_as: aside });
    } else if (st.cursor !== undefined) {
      this.#streamCursor = st.cursor;
      this.#savedCursor = st.cursor;
      this.#log('info', 'resuming from the saved cursor', { cursor: st.cursor, file: this.#opt.stateFile });
    } else {
      this.#log('info', 'no saved cursor; starting from the journal head', { file: this.#opt.stateFile });
    }
    this.#http = http.createServer((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ status: 'ok', cursor: this.#safeCursor() ?? null, head: this.#head }));
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"not_found","message":"this is a Socket.IO bridge: connect to namespace /admin"}}');
    });
    this.#io = new Server(this.#http, {
      serveClient: false,
      connectionStateRecovery: { maxDisconnectionDuration: this.#opt.maxDisconnectionMs, skipMiddlewares: false },
    });
    this.#io.of('/').use((socket, next) => next(Object.assign(new Error('use namespace /admin'), { data: { code: 'wrong_namespace' } })));
    this.#nsp = this.#io.of(NAMESPACE);
    this.#nsp.use((socket, next) => {
      if (tokenMatches(socket.handshake.auth?.token, this.#opt.clientToken)) return next();
      this.stats.refused++;
      const err = new Error('unauthorized');
      err.data = { code: 'unauthorized', message: 'auth.token does not match the bridge\'s client token' };
      next(err);
    });
    this.#nsp.on('connection', (socket) => this.#onConnection(socket));
    const { host = '127.0.0.1', port = 0 } = this.#opt.listen ?? {};
    await new Promise((res, rej) => {
      this.#http.once('error', rej);
      this.#http.listen(port, host, () => {
        this.#http.off('error', rej);
        res();
      });
    });
    this.port = this.#http.address().port;
    this.#progressTimer = setInterval(() => this.#progress(), this.#opt.progressMs);
    this.#loop = this.#consume();
    this.#log('info', 'listening', { host, port: this.port, namespace: NAMESPACE, journal: this.#journal.target });
    return this;
  }

  #onConnection(socket) {
    this.stats.connections++;
    if (!socket.recovered) {
      // Recovery is an optimisation: a client without it cannot know what
      // it missed, so it refetches.
      socket.data.resyncEpoch = this.#resyncEpoch;
      socket.emit('resync', this.#resyncPayload('not_recovered'));
    } else if ((socket.data.resyncEpoch ?? 0) < this.#resyncEpoch) {
      // A resync was sent to everyone while this client was away.
      socket.data.resyncEpoch = this.#resyncEpoch;
      socket.emit('resync', this.#resyncPayload('missed_resync'));
    }
    socket.on('subscribe', (payload, ack) => this.#subscribe(socket, payload, ack, true));
    socket.on('unsubscribe', (payload, ack) => this.#subscribe(socket, payload, ack, false));
  }

  #subscribe(socket, payload, ack, join) {
    const reply = typeof ack === 'function' ? ack : () => {};
    const r = validateSubscription(payload, join ? this.#known : undefined);
    if (r.error) return reply({ ok: false, sequence: this.#safeCursor() ?? 0, ...r });
    const rooms = [...r.value.snapshots.map((s) => `snapshot:${s}`), ...r.value.surfaces.map((s) => `surface:${s}`)];
    if (join) socket.join(rooms);
    else for (const room of rooms) socket.leave(room);
    const mine = [...socket.rooms].filter((x) => x !== socket.id).sort();
    reply({ ok: true, sequence: this.#safeCursor() ?? this.#head, rooms: mine });
  }

  #resyncPayload(reason) {
    return { reason, horizon: this.#horizon, head: this.#head, sequence: this.#head, delay_ms: Math.floor(Math.random() * this.#opt.resyncSpreadMs) };
  }

  // A resync to every client, each with its own jittered delay. Sent to each
  // socket's own room so that recovery can replay it.
  #resyncAll(reason) {
    this.#resyncEpoch++;
    this.stats.resyncs++;
    for (const socket of this.#nsp.sockets.values()) {
      socket.data.resyncEpoch = this.#resyncEpoch;
      this.#nsp.to(socket.id).emit('resync', this.#resyncPayload(reason));
    }
    this.#log('warn', 'resync sent to every client', { reason, horizon: this.#horizon, head: this.#head, clients: this.#nsp.sockets.size });
  }

  #progress() {
    this.stats.progress++;
    this.#nsp.emit('progress', { sequence: this.#safeCursor() ?? this.#head, head: this.#head });
  }

  #emitInvalidate(snapshot, sequence, surfaces) {
    this.#lastEmit.set(snapshot, nowMs());
    this.stats.invalidatesOut++;
    const rooms = [`snapshot:${snapshot}`, ...[...surfaces].map((s) => `surface:${s}`)];
    this.#nsp.to(rooms).emit('invalidate', { snapshot, sequence, surfaces: [...surfaces].sort() });
  }

  // One journal invalidation: sent at once when the snapshot's window is
  // open, else held (merged) until the window ends.
  #onInvalidate(ev, before) {
    this.stats.invalidatesIn++;
    const now = nowMs();
    const last = this.#lastEmit.get(ev.snapshot);
    const held = this.#held.get(ev.snapshot);
    if (!held && (last === undefined || now - last >= this.#opt.windowMs)) {
      this.#emitInvalidate(ev.snapshot, ev.sequence, ev.surfaces);
      return;
    }
    if (held) {
      held.sequence = Math.max(held.sequence, ev.sequence);
      for (const s of ev.surfaces) held.surfaces.add(s);
      return;
    }
    const h = { sequence: ev.sequence, surfaces: new Set(ev.surfaces), after: before ?? 0 };
    h.timer = setTimeout(() => {
      this.#held.delete(ev.snapshot);
      this.#emitInvalidate(ev.snapshot, h.sequence, h.surfaces);
      this.#markDirty();
    }, Math.max(0, last + this.#opt.windowMs - now));
    this.#held.set(ev.snapshot, h);
  }

  #clearHeld() {
    for (const h of this.#held.values()) clearTimeout(h.timer);
    this.#held.clear();
  }

  async #refreshRegistry() {
    try {
      const sf = await this.#journal.surfaces({ signal: this.#abort.signal });
      const surfaces = new Set(sf.surfaces.map((s) => s.id));
      const snapshots = new Set(['none']);
      for (const s of sf.surfaces) if (typeof s.snapshot_hint === 'string') snapshots.add(s.snapshot_hint);
      this.#known = { surfaces, snapshots };
    } catch (err) {
      if (!this.#closed) this.#log('warn', 'could not read the registry; subscriptions are checked for form only', { err: err.message });
    }
  }

  // The outer loop: the client's iterator reconnects by itself; what it
  // throws (a refused token, a bad cursor) is retried here with full jitter.
  async #consume() {
    let attempt = 0;
    while (!this.#closed) {
      this.stats.journalConnects++;
      const before = this.#safeCursor();
      this.#streamCursor = before;
      this.#clearHeld();
      if (!this.#known) this.#refreshRegistry();
      try {
        const it = this.#journal.invalidations({
          since: before,
          signal: this.#abort.signal,
          reconnectBaseMs: this.#opt.reconnectBaseMs,
          reconnectMaxMs: this.#opt.reconnectMaxMs,
          onDisconnect: (err, delay) => {
            // Held invalidations resume from their cursor with the stream.
            this.#log('warn', 'journal stream disconnected; reconnecting', { err: err?.message, code: err?.code, delay_ms: delay, cursor: this.#safeCursor() });
          },
        });
        let first = true;
        for await (const ev of it) {
          attempt = 0;
          if (first) {
            first = false;
            this.#log('info', 'journal stream open', { journal: this.#journal.target, since: before ?? null });
            if (!this.#known) this.#refreshRegistry();
            if (this.#cursorLost) {
              this.#cursorLost = false;
              this.#resyncAll('cursor_lost');
            }
          }
          const prev = this.#streamCursor;
          switch (ev.type) {
            case 'invalidate':
              this.#head = Math.max(this.#head, ev.sequence);
              this.#onInvalidate(ev, prev);
              break;
            case 'resync':
              this.#clearHeld();
              this.#head = ev.head;
              this.#horizon = ev.horizon;
              this.#streamCursor = ev.cursor;
              this.#resyncAll(ev.reason);
              break;
            case 'progress':
              this.#head = Math.max(this.#head, ev.head);
              break;
          }
          this.#streamCursor = ev.cursor ?? this.#streamCursor;
          this.#markDirty();
        }
      } catch (err) {
        if (this.#closed) break;
        const delay = fullJitter(attempt++, this.#opt.reconnectBaseMs, Math.max(this.#opt.reconnectMaxMs, 30_000));
        this.#log('error', 'journal stream refused; retrying', { err: err.message, code: err.code, status: err.status, delay_ms: delay });
        try {
          await sleep(delay, undefined, { signal: this.#abort.signal });
        } catch {
          break;
        }
      }
    }
  }

  #markDirty() {
    const c = this.#safeCursor();
    if (c === undefined || c === this.#savedCursor) return;
    this.#stateDirty = true;
    if (this.#stateTimer) return;
    this.#stateTimer = setTimeout(() => {
      this.#stateTimer = undefined;
      this.#flushState();
    }, this.#opt.stateWriteMs);
  }

  #flushState() {
    this.#stateWrite = this.#stateWrite.then(async () => {
      if (!this.#stateDirty) return;
      this.#stateDirty = false;
      const cursor = this.#safeCursor();
      if (cursor === undefined || cursor === this.#savedCursor) return;
      try {
        await writeState(this.#opt.stateFile, { cursor, journal: this.#journal.target });
        this.#savedCursor = cursor;
      } catch (err) {
        this.#stateDirty = true;
        this.#log('error', 'could not save the cursor', { file: this.#opt.stateFile, err: err.message });
      }
    });
    return this.#stateWrite;
  }

  /** close stops consuming, flushes what is held, saves the cursor and closes every client. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    clearInterval(this.#progressTimer);
    clearTimeout(this.#stateTimer);
    await this.#loop;
    // What is held is announced now rather than lost; the cursor then covers it.
    for (const [snap, h] of this.#held) {
      clearTimeout(h.timer);
      this.#emitInvalidate(snap, h.sequence, h.surfaces);
    }
    this.#held.clear();
    this.#stateDirty = true;
    await this.#flushState();
    this.#journal.close();
    await new Promise((res) => this.#io.close(() => res()));
    this.#log('info', 'closed', { cursor: this.#savedCursor ?? null });
  }
}

/** startBridge builds and starts a Bridge. */
export async function startBridge(options) {
  return new Bridge(options).start();
}
