package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Envelope layout, version 1. One envelope is the data of one tidwall/wal
// entry (which itself is uvarint(len(data)) + data on disk):
//
//	0        1         2                 6        7                        15
//	+--------+---------+-----------------+--------+------------------------+-------------+
//	| magic  | version | crc32c LE       | flags  | sequence uint64 LE     | payload ... |
//	| 0xA7   | 0x01    | over bytes 6..  |        |                        | JSON record |
//	+--------+---------+-----------------+--------+------------------------+-------------+
//
// The CRC32C (Castagnoli) covers the flags, the sequence and the payload,
// so an entry that moved, was cut or had a byte flipped is detected. The
// magic is non-zero so that zero bytes (a zero-filled tail, which
// tidwall/wal would decode as valid empty entries) never pass as an
// envelope. Flags carry facts about the record that are not part of the
// record contract (FlagWriterEventID).
const (
	EnvelopeMagic   byte = 0xA7
	EnvelopeVersion byte = 0x01
	// EnvelopeHeaderSize is the size of the envelope before the payload.
	EnvelopeHeaderSize = 15
)

// Envelope flags.
const (
	// FlagWriterEventID marks a record whose event_id the writer supplied
	// as an idempotency key (so it belongs in the dedupe window); ids the
	// journal generated can never be retried and are not remembered.
	FlagWriterEventID byte = 1 << 0
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendEnvelope appends the envelope of (seq, payload) to dst and returns
// the extended slice. It does not allocate when dst has room.
func AppendEnvelope(dst []byte, seq uint64, payload []byte) []byte {
	return AppendEnvelopeFlags(dst, seq, 0, payload)
}

// AppendEnvelopeFlags is AppendEnvelope with flags.
func AppendEnvelopeFlags(dst []byte, seq uint64, flags byte, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, EnvelopeMagic, EnvelopeVersion, 0, 0, 0, 0, flags)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = append(dst, payload...)
	crc := crc32.Checksum(dst[start+6:], castagnoli)
	binary.LittleEndian.PutUint32(dst[start+2:start+6], crc)
	return dst
}

// EnvelopeSize is the encoded size of an envelope holding payloadLen bytes.
func EnvelopeSize(payloadLen int) int { return EnvelopeHeaderSize + payloadLen }

// DecodeEnvelope checks one envelope and returns its sequence and payload.
// The payload aliases b. Errors are ErrShortEntry, ErrBadMagic,
// ErrUnsupportedVersion or ErrChecksum (wrapped with detail).
func DecodeEnvelope(b []byte) (seq uint64, payload []byte, err error) {
	seq, _, payload, err = DecodeEnvelopeFlags(b)
	return seq, payload, err
}

// DecodeEnvelopeFlags is DecodeEnvelope that also returns the flags.
func DecodeEnvelopeFlags(b []byte) (seq uint64, flags byte, payload []byte, err error) {
	if len(b) < EnvelopeHeaderSize {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrShortEntry, len(b), EnvelopeHeaderSize)
	}
	if b[0] != EnvelopeMagic {
		return 0, 0, nil, fmt.Errorf("%w: 0x%02x, want 0x%02x", ErrBadMagic, b[0], EnvelopeMagic)
	}
	if b[1] != EnvelopeVersion {
		return 0, 0, nil, fmt.Errorf("%w: version %d, this build reads version %d", ErrUnsupportedVersion, b[1], EnvelopeVersion)
	}
	want := binary.LittleEndian.Uint32(b[2:6])
	if got := crc32.Checksum(b[6:], castagnoli); got != want {
		return 0, 0, nil, fmt.Errorf("%w: stored %08x, computed %08x", ErrChecksum, want, got)
	}
	return binary.LittleEndian.Uint64(b[7:15]), b[6], b[EnvelopeHeaderSize:], nil
}

// AppendWALEntry appends the on-disk form tidwall/wal gives an entry
// (uvarint length + data). Used by tests and tools that build segment
// files without a wal.Log.
func AppendWALEntry(dst, data []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(data)))
	return append(dst, data...)
}
