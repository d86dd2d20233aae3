package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Envelope layouts. One envelope is the data of one tidwall/wal entry
// (which itself is uvarint(len(data)) + data on disk).
//
// Version 2, what this build writes:
//
//	0        1         2                 6        7                    15                      23                27
//	+--------+---------+-----------------+--------+--------------------+-----------------------+-----------------+-------------+
//	| magic  | version | crc32c LE       | flags  | sequence uint64 LE | committed int64 LE    | journal tag     | payload ... |
//	| 0xA7   | 0x02    | over bytes 6..  |        |                    | unix nanos, 0=unknown | uint32 LE       | JSON record |
//	+--------+---------+-----------------+--------+--------------------+-----------------------+-----------------+-------------+
//
// Version 1, still read (written by earlier releases), has no commit time:
//
//	0        1         2                 6        7                        15
//	+--------+---------+-----------------+--------+------------------------+-------------+
//	| magic  | version | crc32c LE       | flags  | sequence uint64 LE     | payload ... |
//	| 0xA7   | 0x01    | over bytes 6..  |        |                        | JSON record |
//	+--------+---------+-----------------+--------+------------------------+-------------+
//
// The CRC32C (Castagnoli) covers everything after it (flags, sequence,
// commit time, journal tag, payload), so an entry that moved, was cut or
// had a byte flipped is detected. The journal tag (JournalTag: the first
// four bytes of the journal id of state/identity.json) binds the entry to
// its journal: a segment file of another journal built by the same code
// (same sequences, same sizes) decodes cleanly, and only the tag tells it
// apart; the engine refuses an entry whose tag is not its journal's. The magic is non-zero so that zero bytes (a
// zero-filled tail, which tidwall/wal would decode as valid empty entries)
// never pass as an envelope. Flags carry facts about the record that are
// not part of the record contract (FlagWriterEventID). The commit time is
// the journal's own clock for the record (see Envelope.Committed); a
// version 1 envelope, or a version 2 one written with 0, has none; a
// version 1 envelope has no journal tag either (see the engine for where
// it is still believed).
//
// Version 2 is unreleased outside this build's development line; its
// layout gained the journal tag before any release wrote it, so no data
// with a 23-byte version 2 header exists.
const (
	EnvelopeMagic byte = 0xA7
	// EnvelopeVersion1 is the envelope without a commit time.
	EnvelopeVersion1 byte = 0x01
	// EnvelopeVersion2 adds the commit time and the journal tag.
	EnvelopeVersion2 byte = 0x02
	// EnvelopeVersion is the version this build writes.
	EnvelopeVersion = EnvelopeVersion2
	// EnvelopeHeaderSizeV1 is the size of a version 1 envelope before
	// the payload.
	EnvelopeHeaderSizeV1 = 15
	// EnvelopeHeaderSize is the size of the envelope this build writes
	// (version 2) before the payload.
	EnvelopeHeaderSize = 27
	// JournalTagSize is the size of the journal tag of a version 2
	// envelope.
	JournalTagSize = 4
	// JournalIDSize is the size of a journal id (a UUID), from whose
	// first JournalTagSize bytes the tag is taken. Archive footers carry
	// the whole id (archive.JournalIDSize, the same size).
	JournalIDSize = 16
)

// Envelope flags.
const (
	// FlagWriterEventID marks a record whose event_id the writer supplied
	// as an idempotency key (so it belongs in the dedupe window); ids the
	// journal generated are recognised by their form and not remembered.
	FlagWriterEventID byte = 1 << 0
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Envelope is one decoded envelope.
type Envelope struct {
	Version byte
	Flags   byte
	Seq     uint64
	// Committed is the record's commit time in unix nanoseconds, 0 when
	// the envelope does not carry one (version 1, or a version 2 entry
	// written without one, such as a repair tombstone).
	Committed int64
	// Tag is the journal tag (JournalTag of the writing journal's id);
	// 0 in a version 1 envelope, which has none.
	Tag uint32
	// Payload aliases the decoded bytes.
	Payload []byte
}

// HeaderSize is the size of e's header on disk.
func (e Envelope) HeaderSize() int {
	if e.Version == EnvelopeVersion1 {
		return EnvelopeHeaderSizeV1
	}
	return EnvelopeHeaderSize
}

// JournalTag is the journal tag of the journal id (the 16 bytes of its
// UUID): its first four bytes read big-endian, so that %08x of the tag is
// the first eight hex digits of the UUID as state/identity.json spells it.
func JournalTag(id [JournalIDSize]byte) uint32 {
	return binary.BigEndian.Uint32(id[:JournalTagSize])
}

// AppendEnvelope appends the envelope of (seq, payload), with no flags,
// no commit time and journal tag 0, to dst and returns the extended
// slice. The journal writes AppendEnvelopeTime with its tag; this form is
// for tests of this package, which knows nothing of journals.
func AppendEnvelope(dst []byte, seq uint64, payload []byte) []byte {
	return AppendEnvelopeTime(dst, seq, 0, 0, 0, payload)
}

// AppendEnvelopeTime appends a version 2 envelope carrying flags, the
// commit time committed (unix nanoseconds; 0 for none) and the journal
// tag of the writing journal. It does not allocate when dst has room.
func AppendEnvelopeTime(dst []byte, seq uint64, flags byte, committed int64, tag uint32, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, EnvelopeMagic, EnvelopeVersion2, 0, 0, 0, 0, flags)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(committed))
	dst = binary.LittleEndian.AppendUint32(dst, tag)
	dst = append(dst, payload...)
	crc := crc32.Checksum(dst[start+6:], castagnoli)
	binary.LittleEndian.PutUint32(dst[start+2:start+6], crc)
	return dst
}

// AppendEnvelopeV1 appends a version 1 envelope, the format of earlier
// releases. The journal writes it only for the tombstones repair puts in
// a directory that has no identity yet (whose entries are all version 1);
// tests and tools use it to build directories of the previous format.
func AppendEnvelopeV1(dst []byte, seq uint64, flags byte, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, EnvelopeMagic, EnvelopeVersion1, 0, 0, 0, 0, flags)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = append(dst, payload...)
	crc := crc32.Checksum(dst[start+6:], castagnoli)
	binary.LittleEndian.PutUint32(dst[start+2:start+6], crc)
	return dst
}

// EnvelopeSize is the encoded size of a version 2 envelope holding
// payloadLen bytes.
func EnvelopeSize(payloadLen int) int { return EnvelopeHeaderSize + payloadLen }

// DecodeEnvelope checks one envelope of either version and returns all
// it holds; the payload aliases b. Errors are ErrShortEntry, ErrBadMagic,
// ErrUnsupportedVersion or ErrChecksum (wrapped with detail). It is the
// one decoder of envelopes: Scan, ReadEntryAt and RepairSegment use it.
func DecodeEnvelope(b []byte) (Envelope, error) {
	if len(b) < EnvelopeHeaderSizeV1 {
		return Envelope{}, fmt.Errorf("%w: %d bytes, need at least %d", ErrShortEntry, len(b), EnvelopeHeaderSizeV1)
	}
	if b[0] != EnvelopeMagic {
		return Envelope{}, fmt.Errorf("%w: 0x%02x, want 0x%02x", ErrBadMagic, b[0], EnvelopeMagic)
	}
	var hdr int
	switch b[1] {
	case EnvelopeVersion1:
		hdr = EnvelopeHeaderSizeV1
	case EnvelopeVersion2:
		hdr = EnvelopeHeaderSize
		if len(b) < hdr {
			return Envelope{}, fmt.Errorf("%w: %d bytes, a version 2 envelope needs at least %d", ErrShortEntry, len(b), hdr)
		}
	default:
		return Envelope{}, fmt.Errorf("%w: version %d, this build reads versions %d and %d", ErrUnsupportedVersion, b[1], EnvelopeVersion1, EnvelopeVersion2)
	}
	want := binary.LittleEndian.Uint32(b[2:6])
	if got := crc32.Checksum(b[6:], castagnoli); got != want {
		return Envelope{}, fmt.Errorf("%w: stored %08x, computed %08x", ErrChecksum, want, got)
	}
	e := Envelope{Version: b[1], Flags: b[6], Seq: binary.LittleEndian.Uint64(b[7:15]), Payload: b[hdr:]}
	if hdr == EnvelopeHeaderSize {
		e.Committed = int64(binary.LittleEndian.Uint64(b[15:23]))
		e.Tag = binary.LittleEndian.Uint32(b[23:27])
	}
	return e, nil
}
