// Type declarations of @agentruntime/state-journal (hand-written; they
// describe index.js exactly).

/** The record contract's schema version, filled in when a change omits it. */
export const SCHEMA_VERSION: 'runtime-state-change-v1';

export type ChangeType = 'created' | 'updated' | 'deleted' | 'heartbeat' | 'transitioned' | 'expired' | 'invalidated';
export type Severity = 'debug' | 'info' | 'notice' | 'warning' | 'error' | 'critical';

/** A change to record (runtime-state-change-v1). The journal assigns the sequence. */
export interface Change {
  source: string;
  surface: string;
  change_type: ChangeType | string;
  aggregate_type: string;
  aggregate_id: string;
  /** Filled with a new UUIDv7 when absent: the idempotency key of every retry. */
  event_id?: string;
  /** RFC 3339 with sub-second precision; filled with the client's clock when absent. */
  occurred_at?: string | Date;
  schema_version?: 'runtime-state-change-v1';
  changed_surfaces?: string[];
  severity?: Severity;
  snapshot_hint?: string;
  mutates_authority_state?: boolean;
  artifact_ref?: string;
  correlation_id?: string;
  causation_id?: string;
  metadata?: Record<string, unknown>;
}

/** A change as stored and queried. */
export interface StoredChange extends Required<Pick<Change, 'source' | 'surface' | 'aggregate_type' | 'aggregate_id' | 'changed_surfaces' | 'mutates_authority_state'>> {
  schema_version: 'runtime-state-change-v1';
  event_id: string;
  sequence: number;
  occurred_at: string;
  change_type: string;
  severity: Severity;
  snapshot_hint: string;
  artifact_ref?: string;
  correlation_id?: string;
  causation_id?: string;
  metadata?: Record<string, unknown>;
}

/** The journal's answer for one recorded change. */
export interface Receipt {
  sequence: number;
  event_id: string;
  occurred_at: string;
  surface: string;
  /** True when the record was on stable storage before the answer. */
  durable: boolean;
  /** True when the event_id was already recorded: this is the first receipt and nothing was written. */
  duplicate: boolean;
  redactions: number;
  metadata_trimmed: boolean;
}

/** The filters of GET /v1/changes. Arrays are sent comma-separated. */
export interface QueryFilter {
  after?: number;
  since?: string | Date;
  until?: string | Date;
  surface?: string | string[];
  surfaces?: string | string[];
  change_type?: string | string[];
  change_types?: string | string[];
  aggregate_type?: string;
  aggregate_id?: string;
  correlation_id?: string;
  min_severity?: Severity;
  limit?: number;
  order?: 'newest' | 'oldest';
}

/** The answer of a query, with the cursor vocabulary. */
export interface ChangeList {
  changes: StoredChange[];
  order: 'newest' | 'oldest';
  after?: number;
  head: number;
  horizon: number;
  more: boolean;
  /** The cursor to pass as `after` next. */
  resume_after: number;
}

export interface SurfaceLive {
  id: string;
  records: number;
  last_sequence?: number;
  [k: string]: unknown;
}

export interface SurfaceView {
  id: string;
  registered: boolean;
  live: SurfaceLive;
  [k: string]: unknown;
}

export interface SurfacesBody {
  registry_digest: string;
  surfaces: SurfaceView[];
}

/** GET /v1/status (engine.Status); the fields a client usually reads, and the rest. */
export interface Status {
  dir: string;
  first_sequence: number;
  last_sequence: number;
  durable_sequence: number;
  horizon: number;
  records: number;
  dedupe_window: string;
  failed?: string;
  surfaces: SurfaceLive[];
  [k: string]: unknown;
}

export interface StaleItem {
  id: string;
  last_sequence: number;
}

export interface StaleBody {
  since: number;
  head: number;
  horizon: number;
  resync: boolean;
  snapshots: StaleItem[];
  surfaces: StaleItem[];
  resume_after: number;
}

export interface CompactRequest {
  dry_run?: boolean;
  coalesce?: string;
  max_bytes?: string;
  max_age?: string;
  max_records?: number;
}

export interface ReadyBody {
  status: 'ready';
  last_sequence: number;
  horizon: number;
}

export interface JournalClientOptions {
  /** The journal's Unix socket (journal.sock in its data directory). */
  socketPath?: string;
  /** The journal's origin, e.g. http://127.0.0.1:7766. */
  url?: string;
  /** The bearer token (16..4096 printable ASCII characters). */
  token?: string;
  /** A file holding the token on its first line. */
  tokenFile?: string;
  /** Bound on one attempt (default 10000). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 5). */
  retries?: number;
  /** Full-jitter backoff: base and cap in ms (defaults 50 and 5000). */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface InvalidateEvent {
  type: 'invalidate';
  /** The snapshot to refetch ("none" for surfaces that hint no snapshot). */
  snapshot: string;
  /** It changed up to this sequence. */
  sequence: number;
  /** The surfaces that changed meanwhile. */
  surfaces: string[];
  /** The resume cursor after this event. */
  cursor: number;
}

export interface ResyncEvent {
  type: 'resync';
  reason: string;
  horizon: number;
  head: number;
  resume_after: number;
  cursor: number;
}

export interface ProgressEvent {
  type: 'progress';
  head: number;
  resume_after: number;
  cursor: number;
}

export type InvalidationEvent = InvalidateEvent | ResyncEvent | ProgressEvent;

export interface InvalidationsOptions {
  /** Resume after this cursor (default: from the head). */
  since?: number;
  /** Yield only invalidations of these snapshots (or of the surfaces below). */
  snapshots?: string[];
  /** Yield only invalidations naming one of these surfaces (or of the snapshots above). */
  surfaces?: string[];
  /** Ends the iterator. */
  signal?: AbortSignal;
  /** Full-jitter reconnect backoff (defaults 100 and 5000 ms). */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** A stream silent this long is taken for dead and reopened (default 45000). */
  idleTimeoutMs?: number;
  /** Called on each disconnect with its cause and the delay before the reconnect. */
  onDisconnect?: (error: JournalError | Error | undefined, delayMs: number) => void;
}

export class InvalidationStream implements AsyncIterableIterator<InvalidationEvent> {
  /** Every change up to this cursor has been announced (undefined before the first event). */
  cursor: number | undefined;
  [Symbol.asyncIterator](): InvalidationStream;
  next(): Promise<IteratorResult<InvalidationEvent, undefined>>;
  return(value?: undefined): Promise<IteratorResult<InvalidationEvent, undefined>>;
  throw(e?: unknown): Promise<IteratorResult<InvalidationEvent, undefined>>;
}

export class JournalClient {
  constructor(options: JournalClientOptions);
  readonly target: string;
  close(): void;
  record(change: Change, options?: CallOptions): Promise<Receipt>;
  recordBatch(changes: Change[], options?: CallOptions): Promise<Receipt[]>;
  query(filter?: QueryFilter, options?: CallOptions): Promise<ChangeList>;
  status(options?: CallOptions): Promise<Status>;
  surfaces(options?: CallOptions): Promise<SurfacesBody>;
  stale(since: number, options?: CallOptions): Promise<StaleBody>;
  compact(request?: CompactRequest, options?: CallOptions): Promise<Record<string, unknown>>;
  ready(options?: CallOptions): Promise<ReadyBody>;
  invalidations(options?: InvalidationsOptions): InvalidationStream;
}

export const CLIENT_CODES: Readonly<{
  UNAVAILABLE: 'unavailable';
  TIMEOUT: 'timeout';
  BAD_ANSWER: 'bad_answer';
  ABORTED: 'aborted';
}>;

export class JournalError extends Error {
  /** The server's stable code, or one of CLIENT_CODES. */
  code: string;
  /** The HTTP status; 0 when no answer came. */
  status: number;
  field?: string;
  value?: string;
  problem?: string;
  allowed?: string[];
  suggestion?: string;
  index?: number;
  after?: number;
  horizon?: number;
  resumeAfter?: number;
  requestId?: string;
  retryAfterMs?: number;
  /** True when a write may or may not have been recorded: retry with `changes` (same event ids), exactly-once. */
  outcomeUnknown: boolean;
  /** The changes as sent, with their event ids (writes only). */
  changes?: Change[];
  /** How many attempts were made. */
  attempts?: number;
}
export class ValidationError extends JournalError {}
export class UnauthorizedError extends JournalError {}
export class ConflictError extends JournalError {}
export class CompactedError extends JournalError {}
export class RateLimitedError extends JournalError {}
export class UnavailableError extends JournalError {}

export function isJournalError(err: unknown, code?: string): err is JournalError;
export function readTokenFile(path: string): string;
export function fullJitter(attempt: number, baseMs: number, maxMs: number): number;
export function uuidv7(now?: number): string;
export function isUUIDv7(s: unknown): s is string;
export function uuidv7Time(s: string): number;

export class SSEParser {
  retryMs: number | undefined;
  push(chunk: string): Array<{ event: string; data: string; id: string | undefined }>;
}
