// Compiled by types.test.js with tsc --strict: the declarations in
// index.d.ts must describe how the package is used.
import {
  JournalClient, JournalError, ValidationError, CompactedError, isJournalError, uuidv7, isUUIDv7,
  type Change, type Receipt, type ChangeList, type InvalidationEvent, type Status,
} from '../index.js';

async function use(): Promise<void> {
  const j = new JournalClient({ url: 'http://127.0.0.1:7766', tokenFile: '/tmp/t', timeoutMs: 1000, retries: 2 });
  const u = new JournalClient({ socketPath: '/tmp/journal.sock' });
  const c: Change = { source: 'runtime.work_session', surface: 'runtime_work_session', change_type: 'heartbeat', aggregate_type: 'work_session', aggregate_id: 'ws-1', metadata: { a: 1 } };
  const r: Receipt = await j.record(c);
  const seq: number = r.sequence;
  const dup: boolean = r.duplicate;
  const rs: Receipt[] = await j.recordBatch([c, { ...c, occurred_at: new Date() }]);
  const l: ChangeList = await j.query({ after: seq, surfaces: ['runtime_work_session'], limit: 10, order: 'oldest', since: new Date() });
  const next: number = l.resume_after;
  const st: Status = await u.status();
  const h: number = st.horizon;
  const sf = await j.surfaces();
  const ids: string[] = sf.surfaces.map((s) => s.id);
  const ac = new AbortController();
  const it = j.invalidations({ since: next, snapshots: ['runtime_health'], signal: ac.signal, onDisconnect: (e, d) => void [e, d] });
  for await (const ev of it) {
    const e: InvalidationEvent = ev;
    if (e.type === 'invalidate') {
      const s: string = e.snapshot;
      const surfaces: string[] = e.surfaces;
      void [s, surfaces];
    } else if (e.type === 'resync') {
      const hz: number = e.horizon;
      void hz;
    }
    const cur: number = ev.cursor;
    void cur;
  }
  const cur2: number | undefined = it.cursor;
  try {
    await j.record(c);
  } catch (err) {
    if (err instanceof ValidationError) {
      const f: string | undefined = err.field;
      void f;
    }
    if (err instanceof CompactedError) {
      const ra: number | undefined = err.resumeAfter;
      void ra;
    }
    if (isJournalError(err, 'journal_failed') && err.outcomeUnknown && err.changes) await j.recordBatch(err.changes);
    if (err instanceof JournalError) {
      const code: string = err.code;
      const status: number = err.status;
      void [code, status];
    }
  }
  const id: string = uuidv7();
  const ok: boolean = isUUIDv7(id);
  j.close();
  void [dup, rs, h, ids, cur2, ok];
}
void use;
