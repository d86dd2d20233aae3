package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
)

// The byte layout is documented in docs/format/archive.md (and summed up
// in doc.go); keep them in step.
// All fixed-width integers are little endian.

// FormatVersion is the archive format version this build writes.
// Version 2 added the journal id and the covered sequence range to the
// footer; this build reads versions 1 and 2.
const FormatVersion uint16 = 2

// FormatV1 is the previous format version (no journal id, no
// covered range in the footer), still read.
const FormatV1 uint16 = 1

// JournalIDSize is the size of the journal id a version 2 footer
// carries.
const JournalIDSize = 16

// Size limits of the archive format. Write refuses records over
// them (ErrInvalidRecord); readers treat a length over them as
// corruption before allocating anything.
const (
	// DefaultBlockSize is the uncompressed block size target used
	// when WriterOptions.BlockSize is zero.
	DefaultBlockSize = 64 << 10
	// MinBlockSize and MaxBlockSize bound
	// WriterOptions.BlockSize.
	MinBlockSize = 256
	MaxBlockSize = 4 << 20
	// MaxPayloadSize bounds one record's payload.
	MaxPayloadSize = 4 << 20
	// MaxLabelSize bounds one record's label.
	MaxLabelSize = 1024
)

const (
	archiveMagic           = "SJAR"
	archiveHeaderSize      = 12 // magic(4) version(2) flags(2) crc(4)
	archiveTrailerSize     = 16 // footerLen(4) footerCRC(4) version(2) flags(2) magic(4)
	archiveBlockHeaderSize = 48
	archiveFooterFixedSize = 92  // version 1; the smallest footer of any version
	archiveFooterV2Fixed   = 124 // version 2: + journal id (16) + range first, last (8+8)
	archiveMinFileSize     = archiveHeaderSize + archiveFooterFixedSize + archiveTrailerSize

	// A block holds at most MaxBlockSize bytes of records, or one
	// record of at most MaxPayloadSize+MaxLabelSize plus
	// framing when that single record is larger; the slack covers framing.
	archiveMaxBlockRaw = max(MaxBlockSize, MaxPayloadSize+MaxLabelSize) + 64<<10
	// zstd expands incompressible input by a few bytes per 128 KiB block
	// plus a frame header; this bound is generous.
	archiveMaxBlockCompressed = archiveMaxBlockRaw + archiveMaxBlockRaw/64 + 1<<10
	// A record takes at least 4 bytes: seq, time, label and payload length
	// are one varint byte each at minimum.
	archiveMinRecordSize = 4
	// archiveMaxFooterSize and archiveMaxIndexSize bound the two sections
	// read whole at open. An index entry takes about 30 bytes per 64 KiB
	// block, so 64 MiB indexes far more than any archive we write.
	archiveMaxFooterSize = 16 << 20
	archiveMaxIndexSize  = 64 << 20
)

// archiveCRCTable is the CRC32C (Castagnoli) table used by every checksum
// in an archive.
var archiveCRCTable = crc32.MakeTable(crc32.Castagnoli)

func archiveCRC(b []byte) uint32 { return crc32.Checksum(b, archiveCRCTable) }

// Detail errors carried in CorruptionError.Err.
var (
	errArchiveChecksum  = errors.New("checksum mismatch")
	errArchiveTruncated = errors.New("truncated")
	errArchiveVarint    = errors.New("malformed varint")
)

// ---- file header and trailer ----

// archiveAppendHeader appends the 12-byte file header.
func archiveAppendHeader(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, archiveMagic...)
	dst = binary.LittleEndian.AppendUint16(dst, FormatVersion)
	dst = binary.LittleEndian.AppendUint16(dst, 0) // flags: none defined in v1 or v2
	return binary.LittleEndian.AppendUint32(dst, archiveCRC(dst[start:]))
}

// archiveCheckHeader validates the file header. The first 12 bytes keep
// their meaning in every format version, so the checksum is checked before
// the version: a damaged version field reads as corruption, a valid one we
// do not know as ErrUnsupportedVersion.
func archiveCheckHeader(path string, b []byte) error {
	if len(b) < archiveHeaderSize {
		return archiveCorruptf(path, SectionHeader, 0, "header: %w", errArchiveTruncated)
	}
	if string(b[:4]) != archiveMagic {
		return archiveCorruptf(path, SectionHeader, 0, "bad magic %q, want %q: not an archive", b[:4], archiveMagic)
	}
	if got, want := binary.LittleEndian.Uint32(b[8:12]), archiveCRC(b[:8]); got != want {
		return archiveCorruptf(path, SectionHeader, 0, "header %w (stored %08x, computed %08x)", errArchiveChecksum, got, want)
	}
	return archiveCheckVersion(path, binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]))
}

func archiveCheckVersion(path string, version, flags uint16) error {
	if version != FormatVersion && version != FormatV1 {
		return fmt.Errorf("archive %s: format version %d (this build reads versions %d and %d): %w", path, version, FormatV1, FormatVersion, ErrUnsupportedVersion)
	}
	if flags != 0 {
		return fmt.Errorf("archive %s: unknown feature flags %#04x: %w", path, flags, ErrUnsupportedVersion)
	}
	return nil
}

// archiveAppendTrailer appends the 16-byte trailer that ends the file.
func archiveAppendTrailer(dst []byte, footerLen, footerCRC uint32) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, footerLen)
	dst = binary.LittleEndian.AppendUint32(dst, footerCRC)
	dst = binary.LittleEndian.AppendUint16(dst, FormatVersion)
	dst = binary.LittleEndian.AppendUint16(dst, 0)
	return append(dst, archiveMagic...)
}

// ---- block header ----

// archiveBlockHeader is the fixed 48-byte header in front of every block's
// compressed bytes. crc covers the first 44 header bytes and the
// compressed bytes, so a flipped bit anywhere in a block is caught before
// decompression.
type archiveBlockHeader struct {
	compLen  uint32
	rawLen   uint32
	records  uint32
	firstSeq uint64
	lastSeq  uint64
	minTime  int64
	maxTime  int64
	crc      uint32
}

func (h *archiveBlockHeader) appendFields(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, h.compLen)
	dst = binary.LittleEndian.AppendUint32(dst, h.rawLen)
	dst = binary.LittleEndian.AppendUint32(dst, h.records)
	dst = binary.LittleEndian.AppendUint64(dst, h.firstSeq)
	dst = binary.LittleEndian.AppendUint64(dst, h.lastSeq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.minTime))
	return binary.LittleEndian.AppendUint64(dst, uint64(h.maxTime))
}

func archiveParseBlockHeader(b []byte) archiveBlockHeader {
	_ = b[archiveBlockHeaderSize-1]
	return archiveBlockHeader{
		compLen:  binary.LittleEndian.Uint32(b[0:]),
		rawLen:   binary.LittleEndian.Uint32(b[4:]),
		records:  binary.LittleEndian.Uint32(b[8:]),
		firstSeq: binary.LittleEndian.Uint64(b[12:]),
		lastSeq:  binary.LittleEndian.Uint64(b[20:]),
		minTime:  int64(binary.LittleEndian.Uint64(b[28:])),
		maxTime:  int64(binary.LittleEndian.Uint64(b[36:])),
		crc:      binary.LittleEndian.Uint32(b[44:]),
	}
}

// validate checks the header's fields against the format's limits and
// against each other. It allocates nothing.
func (h *archiveBlockHeader) validate() error {
	switch {
	case h.compLen == 0 || h.compLen > archiveMaxBlockCompressed:
		return fmt.Errorf("compressed length %d outside 1..%d", h.compLen, archiveMaxBlockCompressed)
	case h.rawLen == 0 || h.rawLen > archiveMaxBlockRaw:
		return fmt.Errorf("uncompressed length %d outside 1..%d", h.rawLen, archiveMaxBlockRaw)
	case h.records == 0 || h.records > h.rawLen/archiveMinRecordSize:
		return fmt.Errorf("record count %d impossible for %d uncompressed bytes", h.records, h.rawLen)
	case h.firstSeq == 0 || h.lastSeq < h.firstSeq:
		return fmt.Errorf("sequence range %d..%d is invalid", h.firstSeq, h.lastSeq)
	case h.lastSeq-h.firstSeq < uint64(h.records-1):
		return fmt.Errorf("sequence range %d..%d cannot hold %d strictly increasing records", h.firstSeq, h.lastSeq, h.records)
	case h.records == 1 && h.firstSeq != h.lastSeq:
		return fmt.Errorf("one record but sequence range %d..%d", h.firstSeq, h.lastSeq)
	case h.maxTime < h.minTime:
		return fmt.Errorf("time range %d..%d is inverted", h.minTime, h.maxTime)
	}
	return nil
}

// archiveBlockCRC computes the checksum a block header must carry.
func archiveBlockCRC(headerFields, compressed []byte) uint32 {
	return crc32.Update(archiveCRC(headerFields[:archiveBlockHeaderSize-4]), archiveCRCTable, compressed)
}

// ---- block contents ----

// archiveRec is one decoded record of a block. Payload is raw[off:off+n].
type archiveRec struct {
	seq   uint64
	time  int64
	label uint32 // index into the block's label table
	off   uint32
	n     uint32
}

// archiveParseBlock decodes the uncompressed contents of a block:
//
//	uvarint labelCount, labelCount × (uvarint len, bytes),
//	then records × (uvarint seq, varint timeDelta, uvarint labelIndex,
//	uvarint payloadLen, payload)
//
// where the first record's seq is the full sequence and its timeDelta is
// relative to zero, and every later record's seq is the delta (>= 1) from
// its predecessor and timeDelta the difference from the previous time.
//
// It reuses recs and labels (truncating them first) for the records and
// the label table (sub-slices of raw), and checks them against the header:
// count, sequence range, time range, every label used. Allocation is
// bounded by what raw actually holds: at most len(raw)/4 records.
// Duplicate labels in the table are caught by the reader, which maps them
// to archive label ids.
func archiveParseBlock(raw []byte, h *archiveBlockHeader, recs []archiveRec, labels [][]byte) ([]archiveRec, [][]byte, error) {
	recs, labels = recs[:0], labels[:0]
	d := archiveDec{b: raw}
	nl := d.uvarint()
	if d.err == nil && (nl == 0 || nl > uint64(h.records) || nl > uint64(len(raw))) {
		return recs, labels, fmt.Errorf("label table of %d entries for %d records", nl, h.records)
	}
	for i := uint64(0); i < nl && d.err == nil; i++ {
		l := d.uvarint()
		if d.err == nil && l > MaxLabelSize {
			return recs, labels, fmt.Errorf("label %d is %d bytes, limit %d", i, l, MaxLabelSize)
		}
		if lb := d.bytes(l); d.err == nil {
			labels = append(labels, lb)
		}
	}
	if d.err != nil {
		return recs, labels, fmt.Errorf("label table: %w", d.err)
	}
	var prevSeq uint64
	var prevTime, minT, maxT int64
	for n := uint32(0); d.off < len(raw); n++ {
		if n == h.records {
			return recs, labels, fmt.Errorf("%d bytes after the %d records the header declares", len(raw)-d.off, h.records)
		}
		s := d.uvarint()
		td := d.varint()
		li := d.uvarint()
		pl := d.uvarint()
		if d.err != nil {
			return recs, labels, fmt.Errorf("record %d: %w", n, d.err)
		}
		seq := s
		if n > 0 {
			if s == 0 {
				return recs, labels, fmt.Errorf("record %d: sequence delta 0 (sequences must strictly increase)", n)
			}
			var carry uint64
			if seq, carry = bits.Add64(prevSeq, s, 0); carry != 0 {
				return recs, labels, fmt.Errorf("record %d: sequence overflows", n)
			}
		}
		t := prevTime + td // wraps exactly as the writer's subtraction did
		if li >= uint64(len(labels)) {
			return recs, labels, fmt.Errorf("record %d: label index %d outside table of %d", n, li, len(labels))
		}
		if pl > uint64(len(raw)-d.off) {
			return recs, labels, fmt.Errorf("record %d: payload length %d runs past the block (%d bytes left)", n, pl, len(raw)-d.off)
		}
		recs = append(recs, archiveRec{seq: seq, time: t, label: uint32(li), off: uint32(d.off), n: uint32(pl)})
		d.off += int(pl)
		if n == 0 || t < minT {
			minT = t
		}
		if n == 0 || t > maxT {
			maxT = t
		}
		prevSeq, prevTime = seq, t
	}
	switch {
	case uint32(len(recs)) != h.records:
		return recs, labels, fmt.Errorf("holds %d records, header declares %d", len(recs), h.records)
	case recs[0].seq != h.firstSeq || recs[len(recs)-1].seq != h.lastSeq:
		return recs, labels, fmt.Errorf("sequences %d..%d, header declares %d..%d", recs[0].seq, recs[len(recs)-1].seq, h.firstSeq, h.lastSeq)
	case minT != h.minTime || maxT != h.maxTime:
		return recs, labels, fmt.Errorf("times %d..%d, header declares %d..%d", minT, maxT, h.minTime, h.maxTime)
	}
	// Every label in the table must be used, so the index's per-block label
	// list is exact and block skipping never hides a record.
	if len(labels) <= 64 {
		var used uint64
		for i := range recs {
			used |= 1 << recs[i].label
		}
		if used != (uint64(1)<<len(labels))-1 {
			return recs, labels, errors.New("label table holds a label no record uses")
		}
	} else {
		seen := make([]bool, len(labels))
		for i := range recs {
			seen[recs[i].label] = true
		}
		for i, s := range seen {
			if !s {
				return recs, labels, fmt.Errorf("label %q in the table is used by no record", labels[i])
			}
		}
	}
	return recs, labels, nil
}

// ---- footer ----

// archiveFooterDisk is the footer as stored.
type archiveFooterDisk struct {
	version    uint16
	flags      uint16
	createdAt  int64 // unix nanoseconds
	firstSeq   uint64
	lastSeq    uint64
	minTime    int64
	maxTime    int64
	records    uint64
	coalesced  uint64
	inputBytes uint64
	indexOff   uint64
	indexLen   uint64
	indexCRC   uint32
	blocks     uint32
	// Version 2 only: the id of the journal that wrote the archive and
	// the sequence range it accounts for (stored records plus those its
	// writer dropped, e.g. coalesced); zero in version 1.
	journalID   [JournalIDSize]byte
	rangeFirst  uint64
	rangeLast   uint64
	labels      []string // sorted, distinct; a label's position is its id
	labelCounts []uint64 // records per label, parallel to labels

	crc uint32 // the footer's CRC32C (from the trailer); not encoded in the footer
}

func (f *archiveFooterDisk) append(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, f.version)
	dst = binary.LittleEndian.AppendUint16(dst, f.flags)
	for _, v := range [...]uint64{uint64(f.createdAt), f.firstSeq, f.lastSeq, uint64(f.minTime), uint64(f.maxTime),
		f.records, f.coalesced, f.inputBytes, f.indexOff, f.indexLen} {
		dst = binary.LittleEndian.AppendUint64(dst, v)
	}
	dst = binary.LittleEndian.AppendUint32(dst, f.indexCRC)
	dst = binary.LittleEndian.AppendUint32(dst, f.blocks)
	if f.version >= 2 {
		dst = append(dst, f.journalID[:]...)
		dst = binary.LittleEndian.AppendUint64(dst, f.rangeFirst)
		dst = binary.LittleEndian.AppendUint64(dst, f.rangeLast)
	}
	dst = binary.AppendUvarint(dst, uint64(len(f.labels)))
	for i, l := range f.labels {
		dst = binary.AppendUvarint(dst, uint64(len(l)))
		dst = append(dst, l...)
		dst = binary.AppendUvarint(dst, f.labelCounts[i])
	}
	return dst
}

// archiveParseFooter decodes a footer whose checksum was already checked.
// Version errors are returned bare (the caller wraps them with the path);
// structural problems as plain errors the caller turns into corruption.
func archiveParseFooter(b []byte) (archiveFooterDisk, error) {
	var f archiveFooterDisk
	if len(b) < archiveFooterFixedSize {
		return f, fmt.Errorf("%d bytes, shorter than the fixed %d: %w", len(b), archiveFooterFixedSize, errArchiveTruncated)
	}
	d := archiveDec{b: b}
	f.version = d.u16()
	f.flags = d.u16()
	f.createdAt = int64(d.u64())
	f.firstSeq = d.u64()
	f.lastSeq = d.u64()
	f.minTime = int64(d.u64())
	f.maxTime = int64(d.u64())
	f.records = d.u64()
	f.coalesced = d.u64()
	f.inputBytes = d.u64()
	f.indexOff = d.u64()
	f.indexLen = d.u64()
	f.indexCRC = d.u32()
	f.blocks = d.u32()
	if (f.version != FormatVersion && f.version != FormatV1) || f.flags != 0 {
		return f, nil // the caller reports the version before anything else
	}
	if f.version >= 2 {
		if len(b) < archiveFooterV2Fixed {
			return f, fmt.Errorf("%d bytes, shorter than the fixed %d of a version %d footer: %w", len(b), archiveFooterV2Fixed, f.version, errArchiveTruncated)
		}
		copy(f.journalID[:], d.bytes(JournalIDSize))
		f.rangeFirst = d.u64()
		f.rangeLast = d.u64()
	}
	nl := d.uvarint()
	if d.err != nil {
		return f, d.err
	}
	// Each label entry takes at least two bytes (length and count).
	if nl > uint64(d.remaining()/2) {
		return f, fmt.Errorf("label count %d exceeds what %d remaining bytes can hold", nl, d.remaining())
	}
	// Grow with what actually parses rather than trusting nl.
	f.labels = make([]string, 0, min(nl, 256))
	f.labelCounts = make([]uint64, 0, min(nl, 256))
	var sum uint64
	for i := uint64(0); i < nl; i++ {
		l := d.uvarint()
		if d.err == nil && l > MaxLabelSize {
			return f, fmt.Errorf("label %d is %d bytes, limit %d", i, l, MaxLabelSize)
		}
		lb := d.bytes(l)
		c := d.uvarint()
		if d.err != nil {
			return f, fmt.Errorf("label table: %w", d.err)
		}
		if c == 0 {
			return f, fmt.Errorf("label %q has a zero count", lb)
		}
		if i > 0 && f.labels[i-1] >= string(lb) {
			return f, fmt.Errorf("label table not sorted and distinct at %q", lb)
		}
		f.labels = append(f.labels, string(lb))
		f.labelCounts = append(f.labelCounts, c)
		sum += c
	}
	if d.remaining() != 0 {
		return f, fmt.Errorf("%d unexpected bytes after the label table", d.remaining())
	}
	switch {
	case sum != f.records:
		return f, fmt.Errorf("label counts add up to %d, footer declares %d records", sum, f.records)
	case f.records == 0 && (f.blocks != 0 || f.firstSeq != 0 || f.lastSeq != 0):
		return f, fmt.Errorf("empty archive with %d blocks and sequences %d..%d", f.blocks, f.firstSeq, f.lastSeq)
	case f.records != 0 && (f.blocks == 0 || f.firstSeq == 0 || f.lastSeq < f.firstSeq || f.lastSeq-f.firstSeq < f.records-1):
		return f, fmt.Errorf("%d records in %d blocks cannot span sequences %d..%d", f.records, f.blocks, f.firstSeq, f.lastSeq)
	case f.maxTime < f.minTime:
		return f, fmt.Errorf("time range %d..%d is inverted", f.minTime, f.maxTime)
	}
	if f.version >= 2 {
		switch {
		case f.rangeFirst == 0 && f.rangeLast == 0:
			// The writer stated no range.
		case f.rangeFirst == 0 || f.rangeLast < f.rangeFirst:
			return f, fmt.Errorf("covered range %d..%d is invalid", f.rangeFirst, f.rangeLast)
		case f.records != 0 && (f.firstSeq < f.rangeFirst || f.lastSeq > f.rangeLast):
			return f, fmt.Errorf("records %d..%d lie outside the covered range %d..%d", f.firstSeq, f.lastSeq, f.rangeFirst, f.rangeLast)
		case f.coalesced > f.rangeLast-f.rangeFirst+1 || f.records > f.rangeLast-f.rangeFirst+1-f.coalesced:
			return f, fmt.Errorf("%d records and %d coalesced do not fit the covered range %d..%d", f.records, f.coalesced, f.rangeFirst, f.rangeLast)
		}
	}
	return f, nil
}

// ---- block index ----

// archiveIndexEntry describes one block; the index holds one per block in
// file order.
type archiveIndexEntry struct {
	offset   int64 // file offset of the block header
	length   int64 // block header plus compressed bytes
	rawLen   uint32
	firstSeq uint64
	lastSeq  uint64
	minTime  int64
	maxTime  int64
	records  uint32
	labels   []uint32 // archive label ids, strictly increasing
}

// archiveAppendIndexEntry appends one entry:
//
//	uvarint offset, uvarint length, uvarint rawLen, uvarint firstSeq,
//	uvarint lastSeq-firstSeq, varint minTime, uvarint maxTime-minTime,
//	uvarint records, uvarint labelCount, labelCount × uvarint id delta
//
// (the first label id is stored whole, later ones as the difference from
// their predecessor).
func archiveAppendIndexEntry(dst []byte, e *archiveIndexEntry) []byte {
	dst = binary.AppendUvarint(dst, uint64(e.offset))
	dst = binary.AppendUvarint(dst, uint64(e.length))
	dst = binary.AppendUvarint(dst, uint64(e.rawLen))
	dst = binary.AppendUvarint(dst, e.firstSeq)
	dst = binary.AppendUvarint(dst, e.lastSeq-e.firstSeq)
	dst = binary.AppendVarint(dst, e.minTime)
	dst = binary.AppendUvarint(dst, uint64(e.maxTime)-uint64(e.minTime))
	dst = binary.AppendUvarint(dst, uint64(e.records))
	dst = binary.AppendUvarint(dst, uint64(len(e.labels)))
	prev := uint32(0)
	for i, id := range e.labels {
		if i == 0 {
			dst = binary.AppendUvarint(dst, uint64(id))
		} else {
			dst = binary.AppendUvarint(dst, uint64(id-prev))
		}
		prev = id
	}
	return dst
}

func archiveEncodeIndex(entries []archiveIndexEntry) []byte {
	var b []byte
	for i := range entries {
		b = archiveAppendIndexEntry(b, &entries[i])
	}
	return b
}

// archiveParseIndex decodes the index and checks it against the footer:
// blocks are contiguous from the header to the index, their sequence
// ranges strictly increase, and their counts and ranges add up to the
// footer's. It returns the entry number that failed with the error (-1
// when the failure concerns the index as a whole).
func archiveParseIndex(b []byte, f *archiveFooterDisk) ([]archiveIndexEntry, int, error) {
	// Each entry takes at least 10 bytes (one per varint field, one label).
	const minEntry = 10
	if uint64(f.blocks) > uint64(len(b)/minEntry) {
		return nil, -1, fmt.Errorf("%d blocks cannot fit in an index of %d bytes", f.blocks, len(b))
	}
	// Each block takes at least a header and one compressed byte between
	// the file header and the index.
	if f.indexOff < archiveHeaderSize || uint64(f.blocks) > (f.indexOff-archiveHeaderSize)/(archiveBlockHeaderSize+1) {
		return nil, -1, fmt.Errorf("%d blocks cannot fit in the %d bytes before the index", f.blocks, f.indexOff-min(f.indexOff, archiveHeaderSize))
	}
	entries := make([]archiveIndexEntry, 0, f.blocks)
	d := archiveDec{b: b}
	next := int64(archiveHeaderSize)
	var records uint64
	minT, maxT := int64(0), int64(0)
	for i := 0; i < int(f.blocks); i++ {
		var e archiveIndexEntry
		off, length, raw := d.uvarint(), d.uvarint(), d.uvarint()
		first, span := d.uvarint(), d.uvarint()
		e.minTime = d.varint()
		tspan := d.uvarint()
		recs, nl := d.uvarint(), d.uvarint()
		if d.err != nil {
			return nil, i, d.err
		}
		switch {
		case off != uint64(next):
			return nil, i, fmt.Errorf("block offset %d, want %d (blocks must be contiguous)", off, next)
		case length <= archiveBlockHeaderSize || length > archiveBlockHeaderSize+archiveMaxBlockCompressed:
			return nil, i, fmt.Errorf("block length %d outside %d..%d", length, archiveBlockHeaderSize+1, archiveBlockHeaderSize+archiveMaxBlockCompressed)
		case off+length > f.indexOff:
			return nil, i, fmt.Errorf("block %d..%d runs into the index at %d", off, off+length, f.indexOff)
		case raw == 0 || raw > archiveMaxBlockRaw:
			return nil, i, fmt.Errorf("uncompressed length %d outside 1..%d", raw, archiveMaxBlockRaw)
		case recs == 0 || recs > raw/archiveMinRecordSize:
			return nil, i, fmt.Errorf("record count %d impossible for %d uncompressed bytes", recs, raw)
		case first == 0 || span > ^uint64(0)-first || span < recs-1:
			return nil, i, fmt.Errorf("sequence range %d+%d cannot hold %d strictly increasing records", first, span, recs)
		case i > 0 && first <= entries[i-1].lastSeq:
			return nil, i, fmt.Errorf("first sequence %d does not follow previous block's last %d", first, entries[i-1].lastSeq)
		case nl == 0 || nl > recs || nl > uint64(len(f.labels)) || nl > uint64(d.remaining()):
			return nil, i, fmt.Errorf("%d labels for %d records with %d labels in the archive", nl, recs, len(f.labels))
		}
		e.offset, e.length, e.rawLen = int64(off), int64(length), uint32(raw)
		e.firstSeq, e.lastSeq, e.records = first, first+span, uint32(recs)
		e.maxTime = int64(uint64(e.minTime) + tspan)
		if e.maxTime < e.minTime {
			return nil, i, fmt.Errorf("time range %d+%d overflows", e.minTime, tspan)
		}
		e.labels = make([]uint32, 0, nl)
		id := uint64(0)
		for j := uint64(0); j < nl; j++ {
			v := d.uvarint()
			if d.err != nil {
				return nil, i, d.err
			}
			if j > 0 && v == 0 {
				return nil, i, errors.New("label ids not strictly increasing")
			}
			id += v
			if id >= uint64(len(f.labels)) {
				return nil, i, fmt.Errorf("label id %d outside table of %d", id, len(f.labels))
			}
			e.labels = append(e.labels, uint32(id))
		}
		if i == 0 || e.minTime < minT {
			minT = e.minTime
		}
		if i == 0 || e.maxTime > maxT {
			maxT = e.maxTime
		}
		records += recs
		next = e.offset + e.length
		entries = append(entries, e)
	}
	if d.remaining() != 0 {
		return nil, -1, fmt.Errorf("%d unexpected bytes after %d entries", d.remaining(), f.blocks)
	}
	if uint64(next) != f.indexOff {
		return nil, -1, fmt.Errorf("blocks end at %d, index starts at %d", next, f.indexOff)
	}
	if records != f.records {
		return nil, -1, fmt.Errorf("blocks hold %d records, footer declares %d", records, f.records)
	}
	if n := len(entries); n > 0 {
		if entries[0].firstSeq != f.firstSeq || entries[n-1].lastSeq != f.lastSeq {
			return nil, -1, fmt.Errorf("blocks span sequences %d..%d, footer declares %d..%d", entries[0].firstSeq, entries[n-1].lastSeq, f.firstSeq, f.lastSeq)
		}
		if minT != f.minTime || maxT != f.maxTime {
			return nil, -1, fmt.Errorf("blocks span times %d..%d, footer declares %d..%d", minT, maxT, f.minTime, f.maxTime)
		}
	}
	return entries, -1, nil
}

// ---- bounds-checked decoding ----

// archiveDec reads fixed-width and varint fields from a byte slice. The
// first failure sticks in err and every later read returns zero.
type archiveDec struct {
	b   []byte
	off int
	err error
}

func (d *archiveDec) remaining() int { return len(d.b) - d.off }

func (d *archiveDec) need(n int) bool {
	if d.err != nil {
		return false
	}
	if n > len(d.b)-d.off {
		d.err = errArchiveTruncated
		return false
	}
	return true
}

func (d *archiveDec) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	v := binary.LittleEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

func (d *archiveDec) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *archiveDec) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *archiveDec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		if n == 0 {
			d.err = errArchiveTruncated
		} else {
			d.err = errArchiveVarint
		}
		return 0
	}
	d.off += n
	return v
}

func (d *archiveDec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		if n == 0 {
			d.err = errArchiveTruncated
		} else {
			d.err = errArchiveVarint
		}
		return 0
	}
	d.off += n
	return v
}

// bytes returns the next n bytes as a sub-slice (no copy).
func (d *archiveDec) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.err = errArchiveTruncated
		return nil
	}
	v := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return v
}
