// The bridge's cursor file: {"version":1,"cursor":N,"journal":"..."},
// written atomically (temp file, fsync, rename, directory fsync) so a
// restarted bridge resumes where the last one had told its clients.
import { open, rename, readFile, mkdir, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

export const STATE_VERSION = 1;

/**
 * readState returns {cursor} from the file, {missing: true} when there is
 * none, or {damaged: reason} when it cannot be believed.
 */
export async function readState(path) {
  let text;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return { missing: true };
    throw new Error(`state file ${path}: ${err.message}`, { cause: err });
  }
  let v;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { damaged: `is not JSON (${err.message})` };
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return { damaged: 'is not a JSON object' };
  if (v.version !== STATE_VERSION) return { damaged: `has version ${JSON.stringify(v.version)}, this bridge reads version ${STATE_VERSION}` };
  if (!Number.isSafeInteger(v.cursor) || v.cursor < 0) return { damaged: `has cursor ${JSON.stringify(v.cursor)}, not a sequence` };
  return { cursor: v.cursor, journal: typeof v.journal === 'string' ? v.journal : undefined };
}

/** writeState replaces the file atomically and durably. */
export async function writeState(path, state) {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  const body = JSON.stringify({ version: STATE_VERSION, ...state }) + '\n';
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(body);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** quarantine moves a damaged state file aside, keeping it for inspection. */
export async function quarantine(path) {
  const aside = `${path}.damaged-${Date.now()}`;
  await rename(path, aside);
  return aside;
}
