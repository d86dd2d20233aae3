// Test harness: the real Go journal server, built with `go build` and run as
// a child process on a free loopback port and a temporary data directory.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import http from 'node:http';
import { randomBytes } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..', '..');

let built;

/**
 * journalctl returns the path of a journalctl binary: $JOURNALCTL_BIN when
 * set (make test-node passes the one `make build` made), else one built now
 * with `go build` into a temporary directory (the Go build cache keeps it fast).
 */
export function journalctl() {
  if (process.env.JOURNALCTL_BIN) return resolve(process.env.JOURNALCTL_BIN);
  if (built) return built;
  const out = join(tmpdir(), `statejournal-node-test-${process.getuid?.() ?? 0}`);
  mkdirSync(out, { recursive: true });
  const bin = join(out, `journalctl-${process.pid}`);
  execFileSync('go', ['build', '-o', bin, './cmd/journalctl'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  built = bin;
  process.on('exit', () => rmSync(bin, { force: true }));
  return bin;
}

/** freePort asks the kernel for a free loopback port. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** tempDir makes a temporary directory removed when the process exits. */
export function tempDir(prefix = 'sj-') {
  const d = mkdtempSync(join(tmpdir(), prefix));
  process.on('exit', () => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** writeToken writes a fresh token to a 0600 file and returns {token, file}. */
export function writeToken(dir, name = 'token') {
  const token = randomBytes(24).toString('hex');
  const file = join(dir, name);
  writeFileSync(file, token + '\n', { mode: 0o600 });
  return { token, file };
}

function get(url, path) {
  return new Promise((res) => {
    const req = http.get(url + path, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode));
    });
    req.on('error', () => res(0));
    req.setTimeout(1000, () => req.destroy());
  });
}

/**
 * startServer runs `journalctl serve` and resolves once /readyz answers 200.
 * Options: dir (default a new temp dir), port (default a free one),
 * tokenFile, args (more flags). The result restarts on the same dir and port.
 */
export async function startServer({ dir, port, tokenFile, args = [], env = {} } = {}) {
  dir ??= join(tempDir('sj-server-'), 'journal');
  port ??= await freePort();
  const url = `http://127.0.0.1:${port}`;
  const argv = ['serve', '--dir', dir, '--listen', `127.0.0.1:${port}`, ...(tokenFile ? ['--token-file', tokenFile] : []), ...args];
  const proc = spawn(journalctl(), argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  proc.stderr.on('data', (c) => {
    stderr += c;
    if (stderr.length > 1 << 16) stderr = stderr.slice(-(1 << 15));
  });
  const exited = new Promise((res) => proc.on('exit', (code, sig) => res({ code, sig })));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const st = await get(url, '/readyz');
    if (st === 200) break;
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`journalctl serve exited: ${stderr}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`journalctl serve not ready within 20 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const srv = {
    proc,
    dir,
    port,
    url,
    tokenFile,
    socketPath: join(dir, 'journal.sock'),
    get stderr() {
      return stderr;
    },
    exited,
    /** stop sends SIGTERM (the server drains) and waits for the exit. */
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    /** kill sends SIGKILL and waits for the exit. */
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      return exited;
    },
    /** restart starts a new server on the same directory and port. */
    restart(more = {}) {
      return startServer({ dir, port, tokenFile, args, env, ...more });
    },
  };
  process.on('exit', () => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  return srv;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** heartbeat is a valid heartbeat change of the default catalog. */
export function heartbeat(id = 'ws-1', metadata) {
  return { source: 'runtime.work_session', surface: 'runtime_work_session', change_type: 'heartbeat', aggregate_type: 'work_session', aggregate_id: id, ...(metadata ? { metadata } : {}) };
}

export { existsSync };
