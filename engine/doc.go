// Package engine is the State Change Journal and Runtime State Engine: the
// Go API a runtime module imports to record that a surface changed, and
// that consumers use to learn what changed since a cursor.
//
//	j, err := engine.Open(".tmp/state-journal", engine.WithRegisterer(reg))
//	rc, err := j.Record(ctx, engine.Change{Source: "runtime.work_session",
//		Surface: "runtime_work_session", ChangeType: "heartbeat",
//		AggregateType: "work_session", AggregateID: "ws-42"})
//	res, err := j.Query(ctx, engine.Query{After: cursor})
//	stale, err := j.Stale(cursor)
//
// # Write path and durability
//
// Record and RecordBatch validate a change against runtime-state-change-v1
// (package record: the Change type, its one codec and Validate), the
// surface registry (engine/registry) and the migration policy, fill
// its defaults and redact secrets (internal/redact) in the caller's
// goroutine; nothing bad reaches disk, and a *types.FieldError names the
// field. The encoded change goes to the committer, the one goroutine that
// owns the tidwall/wal hot log: it drains what is queued, assigns
// sequences (the wal index), writes the batch in one write and hands it to
// the syncer, which fsyncs it (group commit) while the committer writes
// the next batch. A call returns when its record is durable under
// SyncAlways; every Receipt says whether it was. The view readers see is
// published only after the fsync, so no reader learns a sequence a crash
// could take back. A failed write or fsync is sticky (ErrFailed) until the
// journal is reopened.
//
// # The view
//
// Readers see one immutable value, the view (view.go): the hot log's
// index (an entry per record, postings per surface, per-surface figures,
// snapshot hints), its segments with their shared read handles, the
// archives with their footers and holes, the persisted horizon and the
// journal identity. Open builds the first one from the files (loadHot and
// reconcileArchives, or loadReadOnlyView) and publishes it. From then on a
// view changes only by a named transition that returns a new view from the
// old one, and only publish stores it:
//
//   - next, add, addSegment: records appended. The committer builds one
//     per batch on its tip; the syncer publishes it once the batch is
//     fsynced (under sync=interval or none the committer publishes it at
//     once). A read-only Refresh builds one from what another process
//     appended.
//   - compacted: the hot log's front cut, its records now in an archive.
//     Compaction asks for it through mutateView, which runs it in the
//     committer between batches (the committer alone owns the hot log and
//     its tip) and publishes it; Open uses it to complete an interrupted
//     compaction.
//   - retained: the oldest archives removed and the horizon raised.
//     Retention asks for it through mutateView after persisting the
//     horizon and before removing any file.
//   - reloaded: a read-only journal read anew from the files after another
//     process compacted or removed what its view names (Refresh).
//
// publish wakes Wait and drops the read handles of the hot segments the
// new view no longer holds; the view's gauges read the published view.
// Handles are reference-counted, not left to finalizers: a reader pins
// every handle of the view it loads (pinView), and a dropped handle closes
// when its last pin goes, so a query that began before a compaction reads
// the files it knew. A pin that fails means a newer view is published; a
// read whose archive retention removed meanwhile runs once more on the
// view that removed it (readPinned). Neither sleeps. The checkpoint asks
// the committer for a durable view and dedupe window (durableState):
// nothing outside the committer touches its fields.
//
// # Identity and time
//
// The journal keeps its own commit time for every record (the v2
// envelope, the archive record's time, the index): retention by age, the
// dedupe window and Query.Since/Until run on it, never on the writer's
// occurred_at, which is bounded (MaxOccurredAtAhead) and otherwise only
// reported. An event_id names one record: writer-supplied ids sit in the
// dedupe window with a content hash (same content: the first receipt;
// other content: ErrEventIDConflict), rebuilt from the hot log and the
// archives when the checkpoint is not used; generated ids name their own
// sequence, so a writer that sends one back is checked against that one
// record (eventid.go).
//
// # Invariants
//
//   - Sequences are assigned at commit, strictly increasing and gapless in
//     the hot log; archives cover contiguous ranges (records dropped by
//     heartbeat coalescing are counted in the archive's footer). Compaction
//     accounts for every sequence of a segment (archived, coalesced under
//     an explicit window, or a tombstone kept under the label "!lost") and
//     refuses, cutting nothing, a segment that fails its frame checks.
//   - Only a failed hot-log write or fsync is sticky: a compaction or
//     checkpoint that fails (no space, damage) is reported (log, Status,
//     state_journal_compaction_failures_total{reason}) and retried.
//   - Every record from the horizon (Status().Horizon) to the head is
//     readable exactly once; a cursor below the horizon gets ErrCompacted.
//     Sequences in that range that no file holds (a deleted archive or hot
//     segment) are a hole: every read that crosses it fails with ErrHole
//     (a *HoleError naming the range and the files around it), Status
//     lists it, validate reports it; reads that do not cross it answer.
//   - Trust nothing on disk: the journal identity (state/identity.json)
//     is written once; the horizon file, the checkpoint and every archive
//     footer name it. A file of another journal is refused (ErrForeign),
//     or, for the checkpoint, rebuilt: a checkpoint that is damaged, of
//     another version, journal or registry, or stale is never believed;
//     Open logs a *CheckpointError (matching ErrCheckpoint) and rebuilds
//     the index from the files; a horizon file that fails its
//     checksum or names a sequence no retention run writes stops the open
//     (ErrIntegrity) and deletes nothing; an archive whose footer and name
//     disagree is refused, and only an archive verified record by record
//     against the hot log decides what open cuts from it.
//   - Open repairs only what a crash can produce (a torn or zero-filled
//     tail of the newest segment, an interrupted truncation, compaction or
//     retention step) and logs, persists and counts each repair. Any other
//     damage fails Open; Repair quarantines it with tombstones.
//   - The writer holds the directory lock (internal/fsx) and re-checks that
//     LOCK is the inode it locked before each batch write, before each
//     acknowledgement and every 250 ms: a removed or replaced LOCK is a
//     sticky failure (ErrFailed matching fsx.ErrLockLost), after which the
//     writer releases the directory for a new one.
//   - A record is indexed under its surface and under every other surface
//     of its changed_surfaces (view.also, postings, per-surface figures,
//     the listed surfaces' snapshot hints for Stale; archives label it
//     "surface+other+..."), each of which passed the migration policy.
//   - Readers never take the writer's locks: a view is immutable once
//     published. A query pins the read handles of its view's hot segments,
//     so one that started before a compaction finishes on the files it
//     knew; dropped segments close when their last reader lets go.
//     Archives are opened through a bounded cache (128 descriptors).
//
// # Files (the data directory)
//
//	LOCK                       writer lock; names the holder
//	hot/                       tidwall/wal segments of CRC32C envelopes (package segment)
//	archive/*.sjar             zstd archives (segment/archive, docs/format/archive.md)
//	quarantine/                bytes cut by recovery or repair
//	state/identity.json        journal id and format version (identity.go), written once
//	state/index.ckpt           index checkpoint (checkpoint.go), for fast open
//	state/horizon.json         the persisted horizon (archive.go), checksummed
//	state/last-recovery.json   the last repair at open
//	state/last-compaction.json the last compaction
//
// # Where things live
//
// journal.go opens, recovers and closes; committer.go is the write path
// (the committer, the syncer and mutateView); view.go holds the view, its
// transitions and publish; prepare.go holds a change to the registry and
// the migration policy and redacts it (the contract itself is
// record.Validate); dedupe.go and eventid.go keep the event-id window and
// the generated ids; index.go and query.go answer queries; follow.go has
// Wait, Stale, Follow (the one follow loop) and the read-only Refresh;
// compact.go, archive.go and auto.go compact and apply retention;
// identity.go and archive.go verify the identity, horizon and archives;
// checkpoint.go saves the index; status.go reports; validate.go and
// repair.go check and fix a directory without opening it. None of them decodes a hot-log frame: package segment reads,
// scans, recovers and repairs segments and returns entries and verdicts
// (damage is a scan's error); package segment/archive reads and writes
// archives.
package engine
