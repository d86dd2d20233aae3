package segment

import (
	"encoding/binary"
	"fmt"
	"io"
)

// A frame is one tidwall/wal entry as it lies in a segment file: the
// length of the envelope as a uvarint, then the envelope.
//
//	uvarint(len(envelope)) | envelope

// FrameSize is the size on disk of the frame of an envelope of envLen
// bytes: what the entry adds to its segment file.
func FrameSize(envLen int) int {
	n := 1
	for x := uint64(envLen); x >= 0x80; x >>= 7 {
		n++
	}
	return n + envLen
}

// AppendWALEntry appends the frame of data (uvarint length + data), the
// on-disk form tidwall/wal gives an entry, to dst. Repair and tools that
// build segment files without a wal.Log use it.
func AppendWALEntry(dst, data []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(data)))
	return append(dst, data...)
}

// ReadEntryAt reads the frame of n bytes at byte offset off of a segment
// file (f; path names it in errors), a position and length an earlier
// scan reported (HotEntry.Off, FrameLen), and checks that it holds a valid
// envelope of sequence seq. buf is used when it has room, else a larger
// one is allocated; the buffer used is returned for the next call, and
// the entry's payload aliases it.
//
// A read failure is returned wrapped with the sequence, path and offset;
// damage is a *CorruptionError (bad_length when the frame has no length
// prefix, bad_checksum when the envelope does not decode or holds another
// sequence).
func ReadEntryAt(f io.ReaderAt, path string, off int64, n int64, seq uint64, buf []byte) (HotEntry, []byte, error) {
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	b := buf[:n]
	if _, err := f.ReadAt(b, off); err != nil {
		return HotEntry{}, buf, fmt.Errorf("read sequence %d from %s at %d: %w", seq, path, off, err)
	}
	_, p := binary.Uvarint(b)
	if p <= 0 {
		return HotEntry{}, buf, &CorruptionError{Segment: path, Offset: off, Sequence: seq, Cause: CauseBadLength, Err: ErrCorrupt}
	}
	env, err := DecodeEnvelope(b[p:])
	if err == nil && env.Seq != seq {
		err = fmt.Errorf("%w: envelope says sequence %d", ErrCorrupt, env.Seq)
	}
	if err != nil {
		return HotEntry{}, buf, &CorruptionError{Segment: path, Offset: off, Sequence: seq, Cause: CauseBadChecksum, Err: err}
	}
	return HotEntry{Envelope: env, Off: off, FrameLen: n}, buf, nil
}

// frameAt reports whether a whole frame whose envelope decodes with
// sequence seq starts at off in data, and its length.
func frameAt(data []byte, off int, seq uint64) (int, bool) {
	l, n := binary.Uvarint(data[off:])
	if n <= 0 || l > uint64(len(data)-off-n) {
		return 0, false
	}
	e, err := DecodeEnvelope(data[off+n : off+n+int(l)])
	if err != nil || e.Seq != seq {
		return 0, false
	}
	return n + int(l), true
}
