// @agentruntime/state-journal — the Node.js client of the State Change
// Journal (SPEC section 9). No runtime dependencies: node:http over the
// journal's Unix socket or TCP.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { setTimeout as sleepTimer } from 'node:timers/promises';
import { uuidv7 } from './lib/uuid.js';
import { SSEParser } from './lib/sse.js';
import {
  CLIENT_CODES,
  JournalError,
  UnavailableError,
  errorFromAnswer,
  isRefusal,
} from './lib/errors.js';

export { uuidv7, isUUIDv7, uuidv7Time } from './lib/uuid.js';
export {
  CLIENT_CODES,
  JournalError,
  ValidationError,
  UnauthorizedError,
  ConflictError,
  CompactedError,
  RateLimitedError,
  UnavailableError,
  isJournalError,
} from './lib/errors.js';
export { SSEParser } from './lib/sse.js';

export const SCHEMA_VERSION = 'runtime-state-change-v1';

const MIN_TOKEN = 16;
const MAX_TOKEN = 4096;
const MAX_ANSWER_BYTES = 64 << 20;
// Connection errors that prove a request never reached the server.
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ENOTFOUND', 'EAI_AGAIN']);

// The GET /v1/changes parameters, with the plural aliases the client takes.
const QUERY_KEYS = new Map([
  ['after', 'after'], ['since', 'since'], ['until', 'until'],
  ['surface', 'surface'], ['surfaces', 'surface'],
  ['change_type', 'change_type'], ['change_types', 'change_type'],
  ['aggregate_type', 'aggregate_type'], ['aggregate_id', 'aggregate_id'],
  ['correlation_id', 'correlation_id'], ['min_severity', 'min_severity'],
  ['limit', 'limit'], ['order', 'order'],
]);

/** checkToken throws unless tok is 16..4096 printable ASCII characters without spaces. */
function checkToken(tok, where) {
  if (typeof tok !== 'string') throw new TypeError(`${where}: a token is a string`);
  if (tok.length < MIN_TOKEN) throw new TypeError(`${where}: the token is ${tok.length} characters, at least ${MIN_TOKEN} are needed`);
  if (tok.length > MAX_TOKEN) throw new TypeError(`${where}: the token is ${tok.length} characters, at most ${MAX_TOKEN} are allowed`);
  for (let i = 0; i < tok.length; i++) {
    const c = tok.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) throw new TypeError(`${where}: character ${i} of the token is not printable ASCII; a token has no spaces or control characters`);
  }
  return tok;
}

/** readTokenFile reads a bearer token: the file's first line, trimmed. */
export function readTokenFile(path) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TypeError(`tokenFile ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, { cause: err });
  }
  const line = text.split(/\r?\n/, 1)[0].trim();
  return checkToken(line, `tokenFile ${path}`);
}

/** fullJitter is a random delay in [0, min(maxMs, baseMs * 2^attempt)). */
export function fullJitter(attempt, baseMs, maxMs) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(Math.random() * ceiling);
}

function sleep(ms, signal) {
  return sleepTimer(ms, undefined, signal ? { signal } : undefined).catch((err) => {
    if (err?.name === 'AbortError') throw abortedError(signal);
    throw err;
  });
}

function abortedError(signal) {
  return new JournalError('journal: the call was aborted', { code: CLIENT_CODES.ABORTED, cause: signal?.reason });
}

function positiveInt(name, v, { min = 0 } = {}) {
  if (!Number.isInteger(v) || v < min) throw new TypeError(`JournalClient: ${name} ${JSON.stringify(v)} is not an integer >= ${min}`);
  return v;
}

/**
 * JournalClient talks to a journal server (`journalctl serve`) over its
 * Unix socket (socketPath; the socket's mode 0600 is its access control)
 * or over TCP (url), sending the bearer token when one is given. Writes get
 * a client-made UUIDv7 event_id, so retries are exactly-once through the
 * journal's dedupe.
 */
export class JournalClient {
  #mod;
  #reqBase;
  #agent;
  #token;
  #target;
  #timeoutMs;
  #retries;
  #retryBaseMs;
  #retryMaxMs;

  constructor(options = {}) {
    const { socketPath, url, token, tokenFile, timeoutMs = 10_000, retries = 5, retryBaseMs = 50, retryMaxMs = 5_000 } = options;
    if (!socketPath === !url) {
      throw new TypeError('JournalClient: give exactly one of socketPath (the journal.sock in the data directory) and url (e.g. http://127.0.0.1:7766)');
    }
    if (token !== undefined && tokenFile !== undefined) throw new TypeError('JournalClient: give token or tokenFile, not both');
    this.#token = token !== undefined ? checkToken(token, 'JournalClient token') : tokenFile !== undefined ? readTokenFile(tokenFile) : undefined;
    this.#timeoutMs = positiveInt('timeoutMs', timeoutMs, { min: 1 });
    this.#retries = positiveInt('retries', retries);
    this.#retryBaseMs = positiveInt('retryBaseMs', retryBaseMs, { min: 1 });
    this.#retryMaxMs = positiveInt('retryMaxMs', retryMaxMs, { min: 1 });
    if (socketPath) {
      if (typeof socketPath !== 'string') throw new TypeError('JournalClient: socketPath is a string');
      this.#mod = http;
      this.#reqBase = { socketPath, headers: { host: 'localhost' } };
      this.#target = `unix:${socketPath}`;
    } else {
      let u;
      try {
        u = new URL(url);
      } catch {
        throw new TypeError(`JournalClient: url ${JSON.stringify(url)} is not a URL; e.g. http://127.0.0.1:7766`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`JournalClient: url ${url}: the scheme is ${u.protocol}, http: or https: is allowed`);
      if (u.pathname !== '/' || u.search || u.hash) throw new TypeError(`JournalClient: url ${url}: give the server's origin only (no path, query or fragment)`);
      this.#mod = u.protocol === 'https:' ? https : http;
      this.#reqBase = { protocol: u.protocol, hostname: u.hostname.replace(/^\[|\]$/g, ''), port: u.port || (u.protocol === 'https:' ? 443 : 80), headers: { host: u.host } };
      this.#target = u.origin;
    }
    this.#agent = new this.#mod.Agent({ keepAlive: true, maxSockets: 16, timeout: 30_000 });
  }

  /** target is where the client sends its requests (for messages). */
  get target() {
    return this.#target;
  }

  /** close releases the client's idle connections. */
  close() {
    this.#agent.destroy();
  }

  #headers(extra) {
    const h = { ...this.#reqBase.headers, accept: 'application/json', ...extra };
    if (this.#token) h.authorization = `Bearer ${this.#token}`;
    return h;
  }

  // One HTTP exchange, bounded by timeoutMs. Resolves with the answer of any
  // status; rejects only when there is no answer.
  #send(method, path, { body, contentType, signal, write }) {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(abortedError(signal));
      const headers = this.#headers(contentType ? { 'content-type': contentType } : {});
      if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
      const req = this.#mod.request({ ...this.#reqBase, method, path, headers, agent: this.#agent });
      let done = false;
      const finish = (fn, v) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        fn(v);
      };
      const fail = (code, message, cause) =>
        finish(reject, new UnavailableError(`journal: ${message} (${method} ${path} at ${this.#target})`, { code, cause, outcomeUnknown: !!write }));
      const timer = setTimeout(() => {
        fail(CLIENT_CODES.TIMEOUT, `no answer within ${this.#timeoutMs} ms`);
        req.destroy();
      }, this.#timeoutMs);
      const onAbort = () => {
        finish(reject, Object.assign(abortedError(signal), { outcomeUnknown: !!write }));
        req.destroy();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => {
        // Refused before a connection existed: the request never left.
        if (NOT_SENT.has(err.code)) {
          return finish(reject, new UnavailableError(`journal: ${err.code}: ${err.message} (${method} ${path} at ${this.#target})`, { code: CLIENT_CODES.UNAVAILABLE, cause: err, outcomeUnknown: false }));
        }
        fail(CLIENT_CODES.UNAVAILABLE, `${err.code ?? 'error'}: ${err.message}`, err);
      });
      req.on('response', (res) => {
        const chunks = [];
        let size = 0;
        res.on('data', (c) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) {
            fail(CLIENT_CODES.BAD_ANSWER, `the answer is over ${MAX_ANSWER_BYTES} bytes`);
            req.destroy();
            return;
          }
          chunks.push(c);
        });
        res.on('error', (err) => fail(CLIENT_CODES.UNAVAILABLE, `the answer broke off: ${err.message}`, err));
        res.on('aborted', () => fail(CLIENT_CODES.UNAVAILABLE, 'the answer broke off'));
        res.on('end', () => finish(resolve, { status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      });
      req.end(body);
    });
  }

  // A call with retries: unknown outcomes (no answer, a timeout, a 5xx that
  // is not a refusal) and 429 are retried with full-jitter exponential
  // backoff (429 and 503 after their Retry-After); anything else is thrown.
  async #call(method, path, { body, contentType, signal, write = false, changes } = {}) {
    let unknown = false; // did any attempt leave its outcome unknown?
    for (let attempt = 0; ; attempt++) {
      let err;
      let retryable;
      try {
        const ans = await this.#send(method, path, { body, contentType, signal, write });
        if (ans.status >= 200 && ans.status < 300) {
          try {
            return JSON.parse(ans.text);
          } catch (cause) {
            throw new JournalError(`journal: the answer to ${method} ${path} is not JSON`, { code: CLIENT_CODES.BAD_ANSWER, status: ans.status, cause, outcomeUnknown: write, changes });
          }
        }
        err = errorFromAnswer(ans.status, ans.headers, ans.text, { write, changes });
        retryable = ans.status === 429 || (ans.status >= 500 && !isRefusal(err.code));
      } catch (e) {
        if (e.code === CLIENT_CODES.ABORTED || e.code === CLIENT_CODES.BAD_ANSWER) {
          if (changes) e.changes = changes;
          throw e;
        }
        err = e;
        if (changes) err.changes = changes;
        retryable = true;
      }
      err.attempts = attempt + 1;
      unknown ||= err.outcomeUnknown;
      err.outcomeUnknown = unknown;
      if (!retryable || attempt >= this.#retries) throw err;
      const jitter = fullJitter(attempt, this.#retryBaseMs, this.#retryMaxMs);
      await sleep(err.retryAfterMs !== undefined ? err.retryAfterMs + Math.floor(jitter / 4) : jitter, signal);
    }
  }

  /**
   * record writes one change and returns its receipt. event_id (UUIDv7) and
   * occurred_at are filled in when absent, so every retry is the same record.
   */
  async record(change, { signal } = {}) {
    const [c] = prepareChanges([change], 'record');
    const out = await this.#call('POST', '/v1/changes', { body: JSON.stringify(c), contentType: 'application/json', signal, write: true, changes: [c] });
    return receiptsOf(out, 1)[0];
  }

  /**
   * recordBatch writes changes all or nothing and returns their receipts in
   * order. On an error whose outcomeUnknown is true, retry with
   * error.changes (the same event ids): exactly-once.
   */
  async recordBatch(changes, { signal } = {}) {
    if (!Array.isArray(changes) || changes.length === 0) throw new TypeError('recordBatch: changes is a non-empty array of change objects');
    const cs = prepareChanges(changes, 'recordBatch');
    const out = await this.#call('POST', '/v1/changes', { body: JSON.stringify(cs), contentType: 'application/json', signal, write: true, changes: cs });
    return receiptsOf(out, cs.length);
  }

  /** query runs GET /v1/changes with the filters of the HTTP API. */
  async query(filter = {}, { signal } = {}) {
    return this.#call('GET', `/v1/changes${queryString(filter)}`, { signal });
  }

  /** status is GET /v1/status: the journal's status. */
  async status({ signal } = {}) {
    return this.#call('GET', '/v1/status', { signal });
  }

  /** surfaces is GET /v1/surfaces: the registry with live figures. */
  async surfaces({ signal } = {}) {
    return this.#call('GET', '/v1/surfaces', { signal });
  }

  /** stale is GET /v1/stale: what to refetch since a cursor. */
  async stale(since, { signal } = {}) {
    return this.#call('GET', `/v1/stale?since=${cursorOf(since, 'since')}`, { signal });
  }

  /** compact is POST /v1/compact: compaction and retention (dry_run previews). */
  async compact(request = {}, { signal } = {}) {
    return this.#call('POST', '/v1/compact', { body: JSON.stringify(request), contentType: 'application/json', signal });
  }

  /** ready is GET /readyz: resolves with its body when the server is ready. */
  async ready({ signal } = {}) {
    return this.#call('GET', '/readyz', { signal });
  }

  /**
   * invalidations follows GET /v1/invalidations: an async iterator of
   * invalidate, resync and progress events. It reconnects with full jitter
   * and resumes from the last event id; below the horizon it yields a
   * resync event. It ends when signal aborts; it throws only for answers a
   * reconnect cannot cure (401, 403, 400).
   */
  invalidations(options = {}) {
    return new InvalidationStream(this, options);
  }

  /** @internal opens one event stream; resolves with the response. */
  _openStream(cursor, signal) {
    return new Promise((resolve, reject) => {
      const headers = this.#headers({ accept: 'text/event-stream' });
      if (cursor !== undefined) headers['last-event-id'] = String(cursor);
      const req = this.#mod.request({ ...this.#reqBase, method: 'GET', path: '/v1/invalidations', headers, agent: false, signal });
      const timer = setTimeout(() => req.destroy(new UnavailableError(`journal: the event stream did not answer within ${this.#timeoutMs} ms`, { code: CLIENT_CODES.TIMEOUT })), this.#timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        if (signal?.aborted) return reject(abortedError(signal));
        reject(err instanceof JournalError ? err : new UnavailableError(`journal: event stream at ${this.#target}: ${err.code ?? 'error'}: ${err.message}`, { code: CLIENT_CODES.UNAVAILABLE, cause: err }));
      });
      req.on('response', (res) => {
        clearTimeout(timer);
        if (res.statusCode === 200) return resolve({ req, res });
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', () => {});
        res.on('end', () => reject(errorFromAnswer(res.statusCode, res.headers, Buffer.concat(chunks).toString('utf8'))));
      });
      req.end();
    });
  }
}

/** InvalidationStream is the async iterator invalidations() returns. */
export class InvalidationStream {
  #client;
  #signal;
  #snapshots;
  #surfaces;
  #baseMs;
  #maxMs;
  #idleMs;
  #onDisconnect;
  #gen;
  /** cursor is the resume cursor: every change up to it has been announced. */
  cursor;

  constructor(client, { since, snapshots, surfaces, signal, reconnectBaseMs = 100, reconnectMaxMs = 5_000, idleTimeoutMs = 45_000, onDisconnect } = {}) {
    this.#client = client;
    this.cursor = since === undefined || since === null ? undefined : cursorOf(since, 'since');
    this.#snapshots = listOf(snapshots, 'snapshots');
    this.#surfaces = listOf(surfaces, 'surfaces');
    this.#signal = signal;
    this.#baseMs = positiveInt('reconnectBaseMs', reconnectBaseMs, { min: 1 });
    this.#maxMs = positiveInt('reconnectMaxMs', reconnectMaxMs, { min: 1 });
    this.#idleMs = positiveInt('idleTimeoutMs', idleTimeoutMs, { min: 1 });
    this.#onDisconnect = onDisconnect;
    this.#gen = this.#run();
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  next() {
    return this.#gen.next();
  }

  return(v) {
    return this.#gen.return(v);
  }

  throw(e) {
    return this.#gen.throw(e);
  }

  #wanted(inv) {
    if (!this.#snapshots && !this.#surfaces) return true;
    if (this.#snapshots?.has(inv.snapshot)) return true;
    return !!this.#surfaces && (inv.surfaces ?? []).some((s) => this.#surfaces.has(s));
  }

  // toEvent turns one SSE event into what the iterator yields (undefined:
  // nothing to yield), advancing the cursor.
  #toEvent(ev) {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return undefined;
    }
    if (ev.id !== undefined && /^\d+$/.test(ev.id)) this.cursor = Number(ev.id);
    switch (ev.event) {
      case 'invalidate': {
        const out = { type: 'invalidate', snapshot: data.snapshot, sequence: data.sequence, surfaces: data.surfaces ?? [], cursor: this.cursor };
        return this.#wanted(out) ? out : undefined;
      }
      case 'resync':
        this.cursor = data.resume_after ?? data.head ?? this.cursor;
        return { type: 'resync', reason: data.reason, horizon: data.horizon, head: data.head, resume_after: data.resume_after, cursor: this.cursor };
      case 'progress':
        if (Number.isInteger(data.resume_after)) this.cursor = data.resume_after;
        return { type: 'progress', head: data.head, resume_after: data.resume_after, cursor: this.cursor };
      case 'shutdown':
        if (Number.isInteger(data.resume_after)) this.cursor = data.resume_after;
        return { shutdown: true };
      default:
        return undefined;
    }
  }

  async *#run() {
    const signal = this.#signal;
    let attempt = 0;
    while (!signal?.aborted) {
      let stream;
      let why;
      try {
        if (this.cursor === undefined) {
          // Pin "from the head" to a number first: a reconnect before the
          // first event must resume from it, not from a later head.
          this.cursor = (await this.#client.status({ signal })).last_sequence;
        }
        stream = await this.#client._openStream(this.cursor, signal);
      } catch (err) {
        if (signal?.aborted) return;
        if (err.status && err.status !== 429 && err.status < 500) throw err; // 400, 401, 403, 404: no reconnect cures it
        why = err;
      }
      if (stream) {
        const { req, res } = stream;
        const parser = new SSEParser();
        let idle;
        const arm = () => {
          clearTimeout(idle);
          idle = setTimeout(() => req.destroy(new UnavailableError(`journal: the event stream was silent for ${this.#idleMs} ms`, { code: CLIENT_CODES.TIMEOUT })), this.#idleMs);
          idle.unref();
        };
        arm();
        // An abort while the consumer holds the iterator between events (the
        // generator suspended at a yield) must still release the stream.
        const onAbort = () => {
          clearTimeout(idle);
          req.destroy();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        res.setEncoding('utf8');
        try {
          for await (const chunk of res) {
            arm();
            for (const ev of parser.push(chunk)) {
              const out = this.#toEvent(ev);
              if (out === undefined) continue;
              attempt = 0; // the stream works: the next reconnect starts small
              if (out.shutdown) {
                why = new UnavailableError('journal: the server is shutting down', { code: 'shutdown' });
                continue;
              }
              yield out;
            }
          }
          why ??= new UnavailableError('journal: the event stream ended', { code: CLIENT_CODES.UNAVAILABLE });
        } catch (err) {
          if (signal?.aborted) return;
          why = err;
        } finally {
          signal?.removeEventListener('abort', onAbort);
          clearTimeout(idle);
          req.destroy();
        }
      }
      if (signal?.aborted) return;
      const delay = fullJitter(attempt++, this.#baseMs, this.#maxMs);
      this.#onDisconnect?.(why, delay);
      try {
        await sleep(delay, signal);
      } catch {
        return;
      }
    }
  }
}

function prepareChanges(changes, where) {
  const now = new Date().toISOString();
  return changes.map((c, i) => {
    if (c === null || typeof c !== 'object' || Array.isArray(c)) {
      throw new TypeError(`${where}: change ${i} is ${c === null ? 'null' : Array.isArray(c) ? 'an array' : typeof c}; a change is an object`);
    }
    const out = { ...c };
    if (out.event_id === undefined || out.event_id === null || out.event_id === '') out.event_id = uuidv7();
    if (out.occurred_at === undefined || out.occurred_at === null || out.occurred_at === '') out.occurred_at = now;
    else if (out.occurred_at instanceof Date) out.occurred_at = out.occurred_at.toISOString();
    if (out.schema_version === undefined) out.schema_version = SCHEMA_VERSION;
    return out;
  });
}

function receiptsOf(out, n) {
  const rs = out?.receipts;
  if (!Array.isArray(rs) || rs.length !== n) {
    throw new JournalError(`journal: the server answered ${Array.isArray(rs) ? rs.length : 'no'} receipts for ${n} changes`, { code: CLIENT_CODES.BAD_ANSWER });
  }
  return rs;
}

function cursorOf(v, name) {
  if (typeof v === 'bigint') v = Number(v);
  if (!Number.isSafeInteger(v) || v < 0) throw new TypeError(`${name} ${JSON.stringify(String(v))} is not a sequence (a non-negative integer)`);
  return v;
}

function listOf(v, name) {
  if (v === undefined || v === null) return undefined;
  const arr = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(arr) || arr.some((s) => typeof s !== 'string' || s === '')) throw new TypeError(`invalidations: ${name} is a list of ids (strings)`);
  return arr.length ? new Set(arr) : undefined;
}

function queryString(filter) {
  if (filter === null || typeof filter !== 'object') throw new TypeError('query: filter is an object');
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(filter)) {
    if (v === undefined || v === null) continue;
    const name = QUERY_KEYS.get(k);
    if (!name) throw new TypeError(`query: ${k} is not a filter; allowed: ${[...QUERY_KEYS.keys()].join(', ')}`);
    let s;
    if (Array.isArray(v)) s = v.join(',');
    else if (v instanceof Date) s = v.toISOString();
    else s = String(v);
    if (p.has(name)) s = `${p.get(name)},${s}`;
    p.set(name, s);
  }
  const q = p.toString();
  return q ? `?${q}` : '';
}
