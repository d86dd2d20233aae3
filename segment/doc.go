// Package segment owns the bytes of the journal's hot log: the entry
// envelope inside the tidwall/wal segments, the scanner that checks hot
// segments and recovers their tails (docs/format/hot.md). The archive
// segments compaction writes are the subpackage segment/archive. It knows
// nothing of surfaces or policy: records are opaque payloads with a
// sequence.
//
// # Hot log
//
// The hot log is a tidwall/wal directory: segment files named by the
// 20-digit sequence of their first entry, each a run of
//
//	uvarint(len(envelope)) | envelope
//
//	envelope (version 2, written by this build):
//	0        1         2                 6        7                    15                   23                27
//	+--------+---------+-----------------+--------+--------------------+--------------------+-----------------+-------------+
//	| 0xA7   | 0x02    | crc32c LE       | flags  | sequence uint64 LE | committed int64 LE | journal tag LE  | payload ... |
//	+--------+---------+-----------------+--------+--------------------+--------------------+-----------------+-------------+
//	                     CRC32C (Castagnoli) over bytes 6..end
//
//	envelope (version 1, written by earlier releases, still read):
//	0        1         2                 6        7                        15
//	+--------+---------+-----------------+--------+------------------------+-------------+
//	| 0xA7   | 0x01    | crc32c LE       | flags  | sequence uint64 LE     | payload ... |
//	+--------+---------+-----------------+--------+------------------------+-------------+
//
// The sequence is the wal index; the envelope repeats it so that an entry
// found in the wrong place is detected. The commit time is the journal's
// own clock for the record, in unix nanoseconds: the engine runs retention
// by age, the dedupe window and time filters on it, never on the writer's
// occurred_at. 0 means "not recorded" (every version 1 entry, and the
// tombstones repair writes); the engine then falls back to occurred_at, as
// earlier releases did. A segment may mix both versions (a journal written
// by an earlier release and continued by this one); each entry says which
// it is. Compaction carries the commit time into the archive record's time
// field, so archives need no format change for it.
//
// The journal tag (JournalTag: the first four bytes of the journal id in
// state/identity.json) names the journal that wrote the entry. Without it
// a hot segment file of another journal built by the same code, with the
// same sequences and sizes, would pass every check here; the engine
// refuses a version 2 entry whose tag is not its journal's, and believes
// a version 1 entry (no tag) only where the identity's upgrade record
// says the directory held version 1 entries (below the sequence the hot
// log had reached when the identity was written).
//
// # Files
//
// All code that reads or writes the bytes of hot segments is here, as
// etcd keeps its encoder, decoder and repair beside each other; the engine
// asks this package for entries and verdicts and never decodes a frame:
//
//	envelope.go  the envelope encoder and its one decoder (DecodeEnvelope)
//	frame.go     the wal frame around an envelope: FrameSize, AppendWALEntry,
//	             ReadEntryAt (one entry at an offset an earlier scan reported)
//	scan.go      Scan, the one reader of a segment's frames in sequence, and
//	             the tail classification (TailDamage)
//	recover.go   tail recovery at open (RecoverTail, QuarantineTail) and the
//	             completion of tidwall/wal's interrupted truncations
//	repair.go    the explicit repair of a damaged segment (RepairSegment:
//	             quarantine and tombstones) and WriteSegment
//	hot.go       the segment files of a hot log (ListHotSegments)
//	errors.go    the sentinels and *CorruptionError (segment, offset,
//	             sequence, cause)
//
// # What tidwall/wal does not do, and what this package adds
//
//   - No checksum: zero bytes decode as valid empty entries. The envelope's
//     non-zero magic and CRC32C close that.
//   - ErrCorrupt without file or offset: Scan returns a *CorruptionError
//     with segment, offset, expected sequence and cause. Damage is Scan's
//     error, never a field of its result a caller could forget to read.
//   - Open fails on any damaged tail: the engine scans first, and cuts a
//     tail that a crash can produce with RecoverTail before tidwall/wal
//     opens the directory.
//   - No directory fsync after create, rotate or truncate, and its
//     ".START"/".END" truncation protocol is completed at open without one:
//     ListHotSegments describes the pending steps without touching disk
//     (for read-only callers) and ApplyHotFixups performs them durably.
//
// # Crash-safety argument for tail recovery
//
// A record is acknowledged only after the fsync that covers it, and
// tidwall/wal fsyncs a segment before it starts the next one, so every
// acknowledged byte is durable and only the bytes of the last, unsynced
// write of the newest segment can be damaged by a crash: cut short (a torn
// tail) or, after a power loss, present as zeros whose sectors never
// reached the disk (a zero-filled tail). Scan calls damage tail damage
// (CorruptionError.Tail) only in the segment its caller says is the newest
// (ScanOptions.Newest), only when no valid envelope with a later sequence
// follows it anywhere in the file, and, for a complete entry, only when it
// ends in a sector-aligned run of zeros; a flipped byte inside a complete
// entry, or a damaged length prefix in front of a valid envelope, is
// interior damage. Tail damage is copied to a quarantine file, made
// durable, and only then cut (RecoverTail, which refuses any other
// damage), so the cut bytes are never lost. Interior damage is never
// repaired implicitly: RepairSegment does it on request, keeping the
// damaged bytes in quarantine and a tombstone in place of each lost
// sequence.
package segment
