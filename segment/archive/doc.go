// Package archive reads and writes archive segments: the immutable,
// zstd-compressed files (archive-<first>-<last>.sjar) that compaction
// moves hot-log records into. Each record is opaque here: a sequence, a
// time, a label (the engine uses the surface id) and a payload. The
// complete specification (every field, the limits, the errors, the
// versions, benchmark figures) is docs/format/archive.md; keep the two in
// step with format.go.
//
// # Layout
//
// All fixed-width integers are little endian; every checksum is CRC32C
// (Castagnoli). A reader starts from the end of the file and reads no
// block to open it:
//
//	offset 0
//	+---------------------------+
//	| file header      12 bytes |  "SJAR", version u16, flags u16, crc32c of bytes 0..8
//	+---------------------------+  <- 12: first block
//	| block 0 ... block n-1     |  each: 48-byte header (lengths, count, sequence and
//	|                           |  time range, crc32c over header and compressed bytes)
//	|                           |  + one zstd frame
//	+---------------------------+  <- footer.indexOff
//	| block index               |  per block: offset, sizes, ranges, label ids (varints)
//	+---------------------------+  <- size - 16 - footerLen
//	| footer                    |  ranges, counts, index offset and crc; version 2 adds
//	|                           |  the journal id and the covered range; label table
//	+---------------------------+  <- size - 16
//	| trailer          16 bytes |  footerLen u32, footer crc32c u32, version, flags, "SJAR"
//	+---------------------------+
//
// # Invariants
//
//   - Every byte is under a checksum, checked before the bytes are used:
//     a block's is checked before the block is decompressed.
//   - Every length read from the file is checked against the file size and
//     the format's limits (MaxPayloadSize, MaxLabelSize, MaxBlockSize, the
//     footer and index ceilings) before anything is allocated, so a damaged
//     or hostile file never makes a reader allocate much or panic
//     (FuzzOpenArchive, FuzzDecodeArchiveBlock).
//   - A block's records reach a caller only after the whole block checked
//     out (sequences strictly increasing, counts, time range and labels
//     matching its header and the index).
//   - A version or flag this build does not know is ErrUnsupportedVersion,
//     never corruption, never repaired; any damage is a *CorruptionError
//     naming the section, block and offset, matching ErrCorrupt.
//
// # Crash safety
//
// Write creates (or truncates a stale) path.tmp, writes header, blocks,
// index, footer and trailer in that order, fsyncs and closes it, renames
// it to path and fsyncs the directory. A crash before the rename leaves
// only path.tmp, which is never taken for an archive: ParseFileName
// rejects the name, a file without its trailer (the last thing written)
// fails Open, and the engine sweeps .tmp files at its next open; the
// records are still in the hot log, which compaction cuts only after
// Write returned. A crash after the rename leaves, after a power loss,
// either no path or a complete one (its data was fsynced before the
// rename); the hot log was not cut yet, so the engine finds the records in
// both places and believes the archive only after it checked the footer's
// range and journal id, read every block (Verify) and compared each
// archived record with the hot one it replaces. A file under a final
// archive name is therefore complete, durable and verifiable end to end.
package archive
