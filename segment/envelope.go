package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Envelope layout, version 1. One envelope is the data of one tidwall/wal
// entry (which itself is uvarint(len(data)) + data on disk):
//
//	0        1         2                 6                        14
//	+--------+---------+-----------------+------------------------+-------------+
//	| magic  | version | crc32c LE       | sequence uint64 LE     | payload ... |
//	| 0xA7   | 0x01    | over bytes 6..  |                        | JSON record |
//	+--------+---------+-----------------+------------------------+-------------+
//
// The CRC32C (Castagnoli) covers the sequence and the payload, so an entry
// that moved, was cut or had a byte flipped is detected. The magic is
// non-zero so that zero bytes (a zero-filled tail, which tidwall/wal would
// decode as valid empty entries) never pass as an envelope.
const (
	EnvelopeMagic   byte = 0xA7
	EnvelopeVersion byte = 0x01
	// EnvelopeHeaderSize is the size of the envelope before the payload.
	EnvelopeHeaderSize = 14
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendEnvelope appends the envelope of (seq, payload) to dst and returns
// the extended slice. It does not allocate when dst has room.
func AppendEnvelope(dst []byte, seq uint64, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, EnvelopeMagic, EnvelopeVersion, 0, 0, 0, 0)
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
	if len(b) < EnvelopeHeaderSize {
		return 0, nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrShortEntry, len(b), EnvelopeHeaderSize)
	}
	if b[0] != EnvelopeMagic {
		return 0, nil, fmt.Errorf("%w: 0x%02x, want 0x%02x", ErrBadMagic, b[0], EnvelopeMagic)
	}
	if b[1] != EnvelopeVersion {
		return 0, nil, fmt.Errorf("%w: version %d, this build reads version %d", ErrUnsupportedVersion, b[1], EnvelopeVersion)
	}
	want := binary.LittleEndian.Uint32(b[2:6])
	if got := crc32.Checksum(b[6:], castagnoli); got != want {
		return 0, nil, fmt.Errorf("%w: stored %08x, computed %08x", ErrChecksum, want, got)
	}
	return binary.LittleEndian.Uint64(b[6:14]), b[EnvelopeHeaderSize:], nil
}

// AppendWALEntry appends the on-disk form tidwall/wal gives an entry
// (uvarint length + data). Used by tests and tools that build segment
// files without a wal.Log.
func AppendWALEntry(dst, data []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(data)))
	return append(dst, data...)
}
