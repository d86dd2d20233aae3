// Package fsx holds the file-system primitives the journal's durability rests
// on: directory fsync, whole-file atomic replacement, stale temp-file sweeps
// and the single-writer lock.
//
// The journal's own files (not the hot log's, which tidwall/wal writes) go
// through FS, a narrow interface of the calls a crash-safe write needs:
// open, write, sync, truncate, close, rename, remove, readdir, mkdir and
// directory fsync. OS is the implementation every journal uses. Faulty
// wraps an FS and fails a chosen call (the Nth fsync of a file, a rename
// with EIO, a short write with ENOSPC), so tests reach the error paths no
// real limit produces on demand, beside the real-OS campaigns (a full
// tmpfs, RLIMIT_FSIZE, SIGKILL), not instead of them. The helpers with an
// FS suffix (WriteFileAtomicFS, CommitTempFS, MkdirAllDurableFS,
// SweepTempFS) take the FS; the ones without use OS.
//
// Invariants every caller relies on:
//
//   - A file is only visible under its final name after its contents were
//     fsynced (WriteFileAtomic writes NAME.tmp, fsyncs it, renames it and then
//     fsyncs the directory, so the rename itself is durable).
//   - Every create, rename or remove that must survive a crash is followed by
//     SyncDir on the directory that holds the name.
//   - A ".tmp" file is never authoritative: SweepTemp removes leftovers of a
//     crash that happened between create and rename.
//   - The writer lock is two flocks, on LOCK and on the data directory. It
//     is bound to the inode of LOCK it took (checked after the flock, with
//     a retry when LOCK was replaced in between); Lock.Check tells whether
//     LOCK is still that file, and a lock whose LOCK was removed or
//     replaced never writes or clears the file now at that path. The
//     directory flock keeps a second writer out even then, until the first
//     releases it.
package fsx
