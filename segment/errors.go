package segment

import (
	"errors"
	"fmt"
)

// Sentinel errors of the hot log. Callers match them with errors.Is.
var (
	// ErrCorrupt marks damage in a complete hot-log entry: a bad checksum,
	// a bad magic byte, a sequence out of place. It is never repaired
	// implicitly; see CorruptionError for where it is.
	ErrCorrupt = errors.New("segment: corrupt entry")
	// ErrUnsupportedVersion marks an envelope whose format version this
	// build does not know. It is never treated as corruption and never
	// repaired.
	ErrUnsupportedVersion = errors.New("segment: unsupported envelope version")
	// ErrShortEntry marks an entry shorter than the envelope header.
	ErrShortEntry = errors.New("segment: entry shorter than envelope header")
	// ErrBadMagic marks an entry that does not start with the envelope magic.
	ErrBadMagic = errors.New("segment: bad envelope magic")
	// ErrChecksum marks an envelope whose CRC32C does not match its bytes.
	ErrChecksum = errors.New("segment: checksum mismatch")
)

// Cause names why a stretch of hot log was found damaged or cut.
type Cause string

// Causes reported by recovery and validation.
const (
	CauseTornTail    Cause = "torn_tail"        // the last entry was cut short by a crash
	CauseZeroTail    Cause = "zero_filled_tail" // the tail is zero bytes (a crash after the size grew, before data)
	CauseBadChecksum Cause = "bad_checksum"     // a complete entry whose CRC does not match
	CauseBadLength   Cause = "bad_length"       // an entry whose length runs past valid data that follows
	CauseBadSequence Cause = "bad_sequence"     // an envelope whose sequence is not the one its position implies
	CauseUnsupported Cause = "unsupported_version"
	CauseForeign     Cause = "foreign_journal" // an entry whose journal tag names another journal (found by the engine)
	CauseIOError     Cause = "io_error"
)

// CorruptionError says where damage was found. It unwraps to the specific
// sentinel (ErrChecksum, ErrBadMagic, ...) and matches ErrCorrupt, except
// for unsupported versions which match ErrUnsupportedVersion only.
type CorruptionError struct {
	Segment  string // segment file path
	Offset   int64  // byte offset of the damaged entry in the segment file
	Sequence uint64 // the sequence the damaged entry should have had
	Cause    Cause
	Err      error
	// Tail says the damage is tail damage: in the newest segment, with no
	// valid entry after it, in the shape a crash leaves (see Scan). Only
	// tail damage may be cut without an explicit repair (RecoverTail).
	Tail bool
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("hot log %s at offset %d (sequence %d): %s: %v", e.Segment, e.Offset, e.Sequence, e.Cause, e.Err)
}

// Unwrap returns the underlying sentinel.
func (e *CorruptionError) Unwrap() []error {
	if errors.Is(e.Err, ErrUnsupportedVersion) {
		return []error{e.Err}
	}
	return []error{e.Err, ErrCorrupt}
}
