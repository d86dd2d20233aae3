// Package baseline holds the systems the journal engine is measured against in
// the same run, so every headline figure sits beside a ratio rather than alone:
//
//   - PlainFsync (a): one JSON line appended to a plain file and fsynced per
//     record, writers serialized by a mutex — what a runtime does without a
//     journal.
//   - PlainGroupCommit (b): the same file and JSON lines behind a group
//     committer (one goroutine drains what writers queued, writes once,
//     fsyncs once) — the engine's batching without validation, redaction,
//     framing, indexing or metrics. The engine should come close to it.
//   - RawWAL (c): github.com/tidwall/wal with one Write (and so one fsync) per
//     record, serialized by the log's own mutex.
//   - RawWALBatch (d): tidwall/wal fed by the same group committer, one
//     WriteBatch and one fsync per batch.
//
// Every baseline writes the same bytes a runtime-state-change-v1 record
// carries (schema version, UUIDv7 event id, sequence, timestamp, the
// heartbeat's fields, defaults), encoded with encoding/json in the writer's
// goroutine. The sequence field comes from an atomic counter, so in the
// group-commit baselines file order and sequence order may differ slightly;
// baselines promise nothing about order.
//
// Batch paths: RecordBatch on PlainFsync writes all lines and fsyncs once; on
// RawWAL it is one WriteBatch; on the group-commit baselines the whole batch is
// one request to the committer.
//
// Sync modes: SyncAlways fsyncs before a call returns. SyncInterval and
// SyncNone write without fsyncing on the call path; SyncInterval adds a
// background fsync every Options.Interval. Fsyncs counts every fsync of the
// data file, including tidwall/wal's fsync when it rotates a segment.
package baseline
