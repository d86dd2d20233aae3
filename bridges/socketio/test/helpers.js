// Test helpers: the bridge as a real child process, and admin clients.
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

export * from '../../../clients/node/test/harness.js';

const bin = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'state-journal-socketio.js');

/**
 * startBridgeProcess runs the bridge binary and resolves once it logs
 * "listening". opts: journal, port, tokenFile, clientTokenFile, stateFile, args.
 */
export async function startBridgeProcess({ journal, port, tokenFile, clientTokenFile, stateFile, args = [] }) {
  const argv = [bin, '--journal', journal, '--listen', `127.0.0.1:${port}`, '--client-token-file', clientTokenFile, '--state-file', stateFile, ...(tokenFile ? ['--token-file', tokenFile] : []), ...args];
  const proc = spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  const logs = [];
  let buf = '';
  let onLine;
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => {
    buf += c;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let v;
      try {
        v = JSON.parse(line);
      } catch {
        v = { msg: line };
      }
      logs.push(v);
      onLine?.(v);
    }
  });
  const exited = new Promise((res) => proc.on('exit', (code, sig) => res({ code, sig })));
  await new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`bridge not listening within 10 s: ${JSON.stringify(logs)}`)), 10_000);
    onLine = (v) => {
      if (v.msg === 'listening') {
        clearTimeout(t);
        res();
      }
    };
    proc.on('exit', () => rej(new Error(`bridge exited: ${JSON.stringify(logs)}`)));
  });
  process.on('exit', () => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  return {
    proc,
    port,
    url: `http://127.0.0.1:${port}`,
    logs,
    exited,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      return exited;
    },
  };
}

/**
 * admin connects an admin client that subscribes on every connect (as a
 * real client must: a bridge that did not recover it has no rooms for it)
 * and records every event with its arrival time and raw payload.
 */
export function admin(url, token, subscription, opts = {}) {
  const socket = io(`${url}/admin`, { auth: { token }, transports: ['websocket'], reconnectionDelay: 100, reconnectionDelayMax: 300, ...opts });
  const events = [];
  const acks = [];
  socket.onAny((name, payload) => events.push({ name, payload, at: performance.now(), raw: JSON.stringify(payload) }));
  socket.on('connect', () => {
    events.push({ name: 'connect', recovered: socket.recovered, at: performance.now(), raw: '' });
    if (subscription) socket.emit('subscribe', subscription, (a) => acks.push({ ...a, at: performance.now(), raw: JSON.stringify(a) }));
  });
  return { socket, events, acks };
}

/** until polls pred every 20 ms until it is true or ms pass. */
export async function until(pred, ms = 10_000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export { join };
