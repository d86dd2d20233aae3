// Package fsx holds the file-system primitives the journal's durability rests
// on: directory fsync, whole-file atomic replacement, stale temp-file sweeps
// and the single-writer lock.
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
