// Package querybench measures the state engine's read side on a large
// journal: the newest records of a rare surface, Stale since a recent
// cursor, a cursor page, a whole-surface scan, and Open with and without
// the index checkpoint.
//
// # The journal it measures
//
// Writing ten million records through Record would take minutes, so
// Generate builds the data directory directly in the engine's on-disk
// layout, the way compaction leaves it:
//
//	<dir>/state/identity.json                   engine.InitDir: the journal id the archives carry
//	<dir>/archive/archive-<first>-<last>.sjar   archive.Write, ArchiveRecords records each
//	<dir>/hot/<N-T+1>                           the hot log, T records written through RecordBatch
//	<dir>/state/                                index checkpoint, written by Close
//	<root>/surfaces.yaml                        the registry the records name (Surfaces)
//
// Archive records are exactly what compaction writes: Label is the surface
// id, Time is occurred_at in unix nanoseconds, Payload is the stored JSON
// form (engine.Change.AppendJSON without the sequence), and sequences are
// contiguous from 1. The archives are built in parallel, one goroutine per
// archive. The hot tail (HotRecords, by default about one full hot segment,
// what automatic compaction leaves unarchived) then goes through the
// engine's own write path, so Open without a checkpoint has a hot log to
// decode and Open with one has a hot log to skip.
//
// The workload is heartbeat-heavy: about 90 % heartbeats on four hot
// surfaces across 1,000 aggregates, the rest (created, updated,
// transitioned, expired, deleted, invalidated) spread evenly over the
// other surfaces, and one rare surface holding exactly one record in every
// RareEvery (20,000) — at sequences that are multiples of RareEvery, so a
// test knows the answer of every rare query without reading the journal.
// The content is a deterministic function of the sequence and Config.Seed;
// only occurred_at follows the clock (the newest record is "now").
//
// # What it reports
//
// Measure opens a dataset and returns a Result: median and p99 of the
// newest-50 rare-surface query, the median of Stale(head-100), a
// 1,000-record cursor page, a whole-surface scan, and the median of
// several Opens without the checkpoint (deleted first), with it, and with
// it on a cold page cache (the dataset's files evicted with
// posix_fadvise). WriteTable prints one line per size and checks the
// targets the issue sets (Targets): rare query under 5 ms, Stale under
// 100 µs, open with checkpoint under 1 s, and rare-query time at the
// largest size at most twice that at the smallest (flat in journal size).
//
// # Cost and cleanup
//
// A Cache builds each size once per process under one temporary directory
// and Remove deletes it. Ten million records take about 300 MB of disk.
package querybench
