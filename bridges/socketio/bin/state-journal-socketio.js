#!/usr/bin/env node
// state-journal-socketio: the Socket.IO bridge of the State Change Journal.
import { parseArgs } from 'node:util';
import { readTokenFile } from '@agentruntime/state-journal';
import { startBridge, DEFAULTS } from '../lib/bridge.js';

const USAGE = `Usage: state-journal-socketio [flags]

Consumes the journal's invalidation stream and tells Socket.IO admin clients
(namespace /admin, auth {token}) which snapshots and surfaces to refetch.

Flags:
  --journal URL|PATH        the journal: http://HOST:PORT, or its Unix socket path
                            (env STATE_JOURNAL_URL; default http://127.0.0.1:7766)
  --listen HOST:PORT        where admin clients connect (env BRIDGE_LISTEN;
                            default 127.0.0.1:7767; port 0 picks a free one)
  --token-file FILE         the journal's bearer token (env STATE_JOURNAL_TOKEN_FILE)
  --client-token-file FILE  the token admin clients send as auth.token (required;
                            env BRIDGE_CLIENT_TOKEN_FILE)
  --state-file FILE         where the cursor is kept (env BRIDGE_STATE_FILE;
                            default .tmp/state-journal-socketio/cursor.json)
  --window-ms N             at most one invalidate per snapshot per N ms (default ${DEFAULTS.windowMs})
  --progress-ms N           a progress event to every client every N ms (default ${DEFAULTS.progressMs})
  --resync-spread-ms N      resync delay_ms is drawn from [0, N) (default ${DEFAULTS.resyncSpreadMs})
  --max-disconnection-ms N  connection state recovery window (default ${DEFAULTS.maxDisconnectionMs})
  --reconnect-max-ms N      cap of the journal reconnect backoff (default ${DEFAULTS.reconnectMaxMs})
  --log-level LEVEL         debug, info, warn or error (default info)
  -h, --help                this help
`;

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 };

function usage(msg) {
  process.stderr.write(`state-journal-socketio: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      journal: { type: 'string' },
      listen: { type: 'string' },
      'token-file': { type: 'string' },
      'client-token-file': { type: 'string' },
      'state-file': { type: 'string' },
      'window-ms': { type: 'string' },
      'progress-ms': { type: 'string' },
      'resync-spread-ms': { type: 'string' },
      'max-disconnection-ms': { type: 'string' },
      'reconnect-max-ms': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (err) {
  usage(err.message);
}
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const level = args['log-level'] ?? 'info';
if (!(level in LEVELS)) usage(`--log-level ${JSON.stringify(level)} is not a level; allowed: debug, info, warn, error`);
const logger = (lvl, msg, fields = {}) => {
  // The listening line is always printed: it is how a supervisor (or a
  // test) learns the port of --listen HOST:0.
  if (LEVELS[lvl] < LEVELS[level] && msg !== 'listening') return;
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }) + '\n');
};

function ms(flag) {
  const v = args[flag];
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1) usage(`--${flag} ${JSON.stringify(v)} is not a positive whole number of milliseconds`);
  return Number(v);
}

const journalArg = args.journal ?? process.env.STATE_JOURNAL_URL ?? 'http://127.0.0.1:7766';
const journal = /^https?:\/\//.test(journalArg) ? { url: journalArg } : { socketPath: journalArg.replace(/^unix:/, '') };
if (journal.url) {
  try {
    const u = new URL(journal.url);
    if (u.pathname !== '/' || u.search) usage(`--journal ${journalArg}: give the journal's origin only, e.g. http://127.0.0.1:7766`);
  } catch {
    usage(`--journal ${JSON.stringify(journalArg)} is neither an http(s) URL nor a socket path`);
  }
}
const tokenFile = args['token-file'] ?? process.env.STATE_JOURNAL_TOKEN_FILE;
if (tokenFile) journal.tokenFile = tokenFile;

const listenArg = args.listen ?? process.env.BRIDGE_LISTEN ?? '127.0.0.1:7767';
const m = /^(\[[^\]]+\]|[^:]*):(\d{1,5})$/.exec(listenArg);
if (!m || Number(m[2]) > 65535) usage(`--listen ${JSON.stringify(listenArg)} is not HOST:PORT (e.g. 127.0.0.1:7767)`);
const listen = { host: m[1].replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(m[2]) };

const clientTokenFile = args['client-token-file'] ?? process.env.BRIDGE_CLIENT_TOKEN_FILE;
if (!clientTokenFile) usage('--client-token-file is required: admin clients authenticate with auth: {token}');

let clientToken;
try {
  clientToken = readTokenFile(clientTokenFile);
} catch (err) {
  usage(`--client-token-file: ${err.message}`);
}

const options = {
  journal,
  listen,
  clientToken,
  stateFile: args['state-file'] ?? process.env.BRIDGE_STATE_FILE ?? '.tmp/state-journal-socketio/cursor.json',
  logger,
};
for (const [flag, key] of [['window-ms', 'windowMs'], ['progress-ms', 'progressMs'], ['resync-spread-ms', 'resyncSpreadMs'], ['max-disconnection-ms', 'maxDisconnectionMs'], ['reconnect-max-ms', 'reconnectMaxMs']]) {
  const v = ms(flag);
  if (v !== undefined) options[key] = v;
}

let bridge;
try {
  bridge = await startBridge(options);
} catch (err) {
  logger('error', 'could not start', { err: err.message });
  process.exit(1);
}

let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    logger('info', 'stopping', { signal: sig });
    await bridge.close();
    process.exit(0);
  });
}
