package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"sync/atomic"
)

// BlockInfo describes one compressed block, as the block index
// records it. A reader can tell from it, without decompressing, whether
// the block can hold a wanted sequence range or label.
type BlockInfo struct {
	Offset            int64    // file offset of the block header
	Length            int64    // block header plus compressed bytes
	UncompressedBytes int      // size of the decompressed contents
	FirstSeq          uint64   // first record's sequence
	LastSeq           uint64   // last record's sequence
	MinTime           int64    // smallest record time (unix ns)
	MaxTime           int64    // largest record time (unix ns)
	Records           int      // records in the block
	Labels            []string // distinct labels in the block, sorted
}

// Reader is an open, immutable archive file. Its header, footer and block
// index are read and verified by Open; blocks are read, checked and
// decompressed only when a scan needs them. All methods are safe for
// concurrent use (blocks are read with pread); Close must not race with
// scans that the caller still wants to succeed.
type Reader struct {
	path   string
	f      *os.File
	size   int64
	footer archiveFooterDisk
	index  []archiveIndexEntry
	ids    map[string]uint32 // label -> id (position in footer.labels)
	closed atomic.Bool

	// blocksDecoded counts blocks read and decompressed, for tests that
	// prove block skipping.
	blocksDecoded atomic.Uint64
}

// Open opens the archive at path: it reads and checks the header,
// the trailer, the footer and the block index (checksums, lengths against
// the file size, and the index against the footer) but reads no block.
//
// A file in a format version this build does not know returns an error
// matching ErrUnsupportedVersion. Any other damage returns an
// *CorruptionError (matching ErrCorrupt) naming the section;
// a truncated, zero-length or garbage file is corruption, never a panic,
// and no length read from the file is trusted before it is checked against
// what the file holds.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	a := &Reader{path: path, f: f}
	if err := a.load(); err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

// load reads and checks everything but the blocks.
func (a *Reader) load() error {
	fi, err := a.f.Stat()
	if err != nil {
		return fmt.Errorf("open archive %s: %w", a.path, err)
	}
	size := fi.Size()
	hdr := make([]byte, archiveHeaderSize)
	n, err := a.f.ReadAt(hdr, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("open archive %s: read header: %w", a.path, err)
	}
	if err := archiveCheckHeader(a.path, hdr[:n]); err != nil {
		return err
	}
	if size < archiveMinFileSize {
		return archiveCorruptf(a.path, SectionTrailer, size, "file is %d bytes, shorter than the %d of an empty archive: %w", size, archiveMinFileSize, errArchiveTruncated)
	}

	trOff := size - archiveTrailerSize
	tr, err := a.readSection(trOff, archiveTrailerSize)
	if err != nil {
		return err
	}
	if string(tr[12:16]) != archiveMagic {
		return archiveCorruptf(a.path, SectionTrailer, trOff, "bad trailer magic %q (file cut short or overwritten?)", tr[12:16])
	}
	version := binary.LittleEndian.Uint16(hdr[4:6])
	if v, fl := binary.LittleEndian.Uint16(tr[8:]), binary.LittleEndian.Uint16(tr[10:]); v != version || fl != 0 {
		return archiveCorruptf(a.path, SectionTrailer, trOff, "trailer says version %d flags %#x, header says version %d", v, fl, version)
	}
	footLen := int64(binary.LittleEndian.Uint32(tr[0:]))
	footCRC := binary.LittleEndian.Uint32(tr[4:])
	if footLen < archiveFooterFixedSize || footLen > archiveMaxFooterSize || footLen > trOff-archiveHeaderSize {
		return archiveCorruptf(a.path, SectionTrailer, trOff, "footer length %d outside %d..%d", footLen, archiveFooterFixedSize, min(archiveMaxFooterSize, trOff-archiveHeaderSize))
	}

	footOff := trOff - footLen
	fb, err := a.readSection(footOff, footLen)
	if err != nil {
		return err
	}
	if got := archiveCRC(fb); got != footCRC {
		return archiveCorruptf(a.path, SectionFooter, footOff, "footer %w (stored %08x, computed %08x)", errArchiveChecksum, footCRC, got)
	}
	foot, err := archiveParseFooter(fb)
	if err != nil {
		return &CorruptionError{Path: a.path, Section: SectionFooter, Block: -1, Offset: footOff, Err: err}
	}
	if foot.version != version || foot.flags != 0 {
		return archiveCorruptf(a.path, SectionFooter, footOff, "footer says version %d flags %#x, header says version %d", foot.version, foot.flags, version)
	}
	foot.crc = footCRC

	if foot.indexOff < archiveHeaderSize || foot.indexOff > uint64(footOff) || foot.indexLen != uint64(footOff)-foot.indexOff {
		return archiveCorruptf(a.path, SectionFooter, footOff, "index at %d+%d does not end where the footer starts (%d)", foot.indexOff, foot.indexLen, footOff)
	}
	if foot.indexLen > archiveMaxIndexSize {
		return archiveCorruptf(a.path, SectionFooter, footOff, "index length %d over the %d limit", foot.indexLen, archiveMaxIndexSize)
	}
	ib, err := a.readSection(int64(foot.indexOff), int64(foot.indexLen))
	if err != nil {
		return err
	}
	if got := archiveCRC(ib); got != foot.indexCRC {
		return archiveCorruptf(a.path, SectionIndex, int64(foot.indexOff), "index %w (stored %08x, computed %08x)", errArchiveChecksum, foot.indexCRC, got)
	}
	index, entry, err := archiveParseIndex(ib, &foot)
	if err != nil {
		if entry >= 0 {
			err = fmt.Errorf("entry for block %d: %w", entry, err)
		}
		return &CorruptionError{Path: a.path, Section: SectionIndex, Block: -1, Offset: int64(foot.indexOff), Err: err}
	}
	ids := make(map[string]uint32, len(foot.labels))
	for i, l := range foot.labels {
		ids[l] = uint32(i)
	}
	a.size, a.footer, a.index, a.ids = size, foot, index, ids
	return nil
}

// readSection reads n bytes at off; n was checked against the file size.
func (a *Reader) readSection(off, n int64) ([]byte, error) {
	b := make([]byte, n)
	if _, err := a.f.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			// The file shrank after we measured it.
			return nil, archiveCorruptf(a.path, SectionTrailer, off, "read %d bytes at %d: %w", n, off, errArchiveTruncated)
		}
		return nil, fmt.Errorf("archive %s: read %d bytes at %d: %w", a.path, n, off, err)
	}
	return b, nil
}

// Path returns the file the archive was opened from.
func (a *Reader) Path() string { return a.path }

// Footer returns the archive's footer. The LabelCounts map is a fresh copy.
func (a *Reader) Footer() Footer { return a.footer.public(a.size) }

// Blocks returns the block index, one entry per block in sequence order.
// The slice is a fresh copy.
func (a *Reader) Blocks() []BlockInfo {
	out := make([]BlockInfo, len(a.index))
	for i := range a.index {
		e := &a.index[i]
		labels := make([]string, len(e.labels))
		for j, id := range e.labels {
			labels[j] = a.footer.labels[id]
		}
		out[i] = BlockInfo{
			Offset: e.offset, Length: e.length, UncompressedBytes: int(e.rawLen),
			FirstSeq: e.firstSeq, LastSeq: e.lastSeq, MinTime: e.minTime, MaxTime: e.maxTime,
			Records: int(e.records), Labels: labels,
		}
	}
	return out
}

// Close releases the file handle. Scans running concurrently fail with
// ErrClosed. Close is idempotent.
func (a *Reader) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	return a.f.Close()
}

// wanted maps a label filter to archive label ids: nil means every label,
// and an empty non-nil set means no record can match.
func (a *Reader) wanted(labels []string) []bool {
	if len(labels) == 0 {
		return nil
	}
	want := make([]bool, len(a.footer.labels))
	for _, l := range labels {
		if id, ok := a.ids[l]; ok {
			want[id] = true
		}
	}
	return want
}

func (e *archiveIndexEntry) holdsAny(want []bool) bool {
	if want == nil {
		return true
	}
	for _, id := range e.labels {
		if want[id] {
			return true
		}
	}
	return false
}

// Scan calls fn for each record with Seq >= from and, when labels is not
// empty, a Label in labels, in increasing sequence order, until fn returns
// false. It reads and decompresses only blocks whose index entry can hold a
// match. The record's Payload aliases a pooled buffer and is valid only
// during the call to fn; copy it to keep it.
//
// A block is checked whole (checksum, decompression, every record against
// its header and the index) before any of its records is passed to fn, so
// fn never sees a record from a damaged block. A damaged block returns an
// *CorruptionError naming it, after the records of earlier blocks
// were delivered; blocks the scan skips are not read and cannot fail it.
func (a *Reader) Scan(from uint64, labels []string, fn func(Record) bool) error {
	want := a.wanted(labels)
	start := sort.Search(len(a.index), func(i int) bool { return a.index[i].lastSeq >= from })
	s := archiveGetScratch()
	defer archivePutScratch(s)
	for i := start; i < len(a.index); i++ {
		if !a.index[i].holdsAny(want) {
			continue
		}
		if err := a.readBlock(i, s); err != nil {
			return err
		}
		j, _ := slices.BinarySearchFunc(s.recs, from, func(r archiveRec, seq uint64) int {
			switch {
			case r.seq < seq:
				return -1
			case r.seq > seq:
				return 1
			}
			return 0
		})
		for ; j < len(s.recs); j++ {
			if !s.deliver(j, want, fn) {
				return nil
			}
		}
	}
	return nil
}

// ScanReverse is Scan newest first: it calls fn for each record with
// Seq <= to (to == 0 means from the last record) and, when labels is not
// empty, a Label in labels, in decreasing sequence order, until fn returns
// false. Its guarantees are those of Scan.
func (a *Reader) ScanReverse(to uint64, labels []string, fn func(Record) bool) error {
	if to == 0 {
		to = math.MaxUint64
	}
	want := a.wanted(labels)
	end := sort.Search(len(a.index), func(i int) bool { return a.index[i].firstSeq > to })
	s := archiveGetScratch()
	defer archivePutScratch(s)
	for i := end - 1; i >= 0; i-- {
		if !a.index[i].holdsAny(want) {
			continue
		}
		if err := a.readBlock(i, s); err != nil {
			return err
		}
		j := len(s.recs) - 1
		for j >= 0 && s.recs[j].seq > to {
			j--
		}
		for ; j >= 0; j-- {
			if !s.deliver(j, want, fn) {
				return nil
			}
		}
	}
	return nil
}

// deliver passes record j of the decoded block to fn when it matches the
// label filter, and reports whether to go on.
func (s *archiveScratch) deliver(j int, want []bool, fn func(Record) bool) bool {
	r := &s.recs[j]
	if want != nil && !want[s.ids[r.label]] {
		return true
	}
	end := r.off + r.n
	return fn(Record{Seq: r.seq, Time: r.time, Label: s.names[r.label], Payload: s.raw[r.off:end:end]})
}

// readBlock reads block i into s and checks it completely: header against
// the index, checksum, decompression, and every record against the header.
// On success s.recs, s.names and s.ids describe the block.
func (a *Reader) readBlock(i int, s *archiveScratch) error {
	if a.closed.Load() {
		return fmt.Errorf("archive %s: %w", a.path, ErrClosed)
	}
	e := &a.index[i]
	s.block = archiveGrow(s.block, int(e.length))
	if _, err := a.f.ReadAt(s.block, e.offset); err != nil {
		switch {
		case errors.Is(err, os.ErrClosed):
			return fmt.Errorf("archive %s: %w", a.path, ErrClosed)
		case errors.Is(err, io.EOF):
			return a.blockCorrupt(i, fmt.Errorf("file ends inside the block: %w", errArchiveTruncated))
		}
		return fmt.Errorf("archive %s: read block %d at offset %d: %w", a.path, i, e.offset, err)
	}
	a.blocksDecoded.Add(1)
	h, comp, err := archiveCheckBlock(s.block)
	if err != nil {
		return a.blockCorrupt(i, err)
	}
	if h.rawLen != e.rawLen || h.records != e.records || h.firstSeq != e.firstSeq || h.lastSeq != e.lastSeq ||
		h.minTime != e.minTime || h.maxTime != e.maxTime {
		return a.blockCorrupt(i, fmt.Errorf("block header (%d records, sequences %d..%d, times %d..%d, %d bytes) disagrees with the index (%d records, sequences %d..%d, times %d..%d, %d bytes)",
			h.records, h.firstSeq, h.lastSeq, h.minTime, h.maxTime, h.rawLen, e.records, e.firstSeq, e.lastSeq, e.minTime, e.maxTime, e.rawLen))
	}
	if err := archiveDecodeBlockBody(&h, comp, s); err != nil {
		return a.blockCorrupt(i, err)
	}
	// Map the block's label table onto archive label ids; the set must be
	// exactly the one the index lists, or block skipping could hide
	// records.
	s.ids, s.names = s.ids[:0], s.names[:0]
	for _, lb := range s.labels {
		id, ok := a.ids[string(lb)]
		if !ok {
			return a.blockCorrupt(i, fmt.Errorf("label %q is not in the archive's label table", lb))
		}
		s.ids = append(s.ids, id)
		s.names = append(s.names, a.footer.labels[id])
	}
	s.sorted = append(s.sorted[:0], s.ids...)
	slices.Sort(s.sorted)
	if !slices.Equal(s.sorted, e.labels) {
		return a.blockCorrupt(i, fmt.Errorf("block holds labels %v, the index lists %v", s.names, a.labelNames(e.labels)))
	}
	return nil
}

func (a *Reader) labelNames(ids []uint32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = a.footer.labels[id]
	}
	return out
}

func (a *Reader) blockCorrupt(i int, err error) *CorruptionError {
	return &CorruptionError{Path: a.path, Section: SectionBlock, Block: i, Offset: a.index[i].offset, Err: err}
}

// archiveCheckBlock parses the header of a block (header plus compressed
// bytes), checks it against the format's limits and the block's length,
// and verifies the checksum. It allocates nothing.
func archiveCheckBlock(b []byte) (archiveBlockHeader, []byte, error) {
	if len(b) < archiveBlockHeaderSize {
		return archiveBlockHeader{}, nil, fmt.Errorf("%d bytes, shorter than a block header: %w", len(b), errArchiveTruncated)
	}
	h := archiveParseBlockHeader(b)
	if err := h.validate(); err != nil {
		return h, nil, fmt.Errorf("block header: %w", err)
	}
	if uint64(h.compLen) != uint64(len(b)-archiveBlockHeaderSize) {
		return h, nil, fmt.Errorf("header declares %d compressed bytes, block holds %d", h.compLen, len(b)-archiveBlockHeaderSize)
	}
	comp := b[archiveBlockHeaderSize:]
	if got := archiveBlockCRC(b, comp); got != h.crc {
		return h, nil, fmt.Errorf("block %w (stored %08x, computed %08x)", errArchiveChecksum, h.crc, got)
	}
	return h, comp, nil
}

// archiveDecodeBlockBody decompresses a checked block into s.raw and
// decodes its records into s.recs and its label table into s.labels. The
// decompressed size is bounded by the header's rawLen, itself bounded by
// archiveMaxBlockRaw.
func archiveDecodeBlockBody(h *archiveBlockHeader, comp []byte, s *archiveScratch) error {
	s.rawBuf = archiveGrow(s.rawBuf, int(h.rawLen))
	raw, err := archiveDecompress(comp, h.rawLen, s.rawBuf)
	if err != nil {
		return err
	}
	s.raw = raw
	s.recs, s.labels, err = archiveParseBlock(raw, h, s.recs, s.labels)
	return err
}

// Verify reads every block and checks it completely (checksum,
// decompression, record decoding, sequence and time ranges and counts
// against the block header and the index, labels against the index), then
// checks the totals (records, per-label counts, input bytes) against the
// footer, and re-reads the footer and index from disk. It returns every
// problem found, in file order, or nil when the archive is clean. An I/O
// error reading a block is reported as that block's problem.
func (a *Reader) Verify() []*CorruptionError {
	var problems []*CorruptionError
	add := func(err error) {
		var ce *CorruptionError
		if !errors.As(err, &ce) {
			ce = &CorruptionError{Path: a.path, Section: SectionFooter, Block: -1, Err: err}
		}
		problems = append(problems, ce)
	}
	if a.closed.Load() {
		add(fmt.Errorf("archive %s: %w", a.path, ErrClosed))
		return problems
	}
	s := archiveGetScratch()
	defer archivePutScratch(s)
	counts := make([]uint64, len(a.footer.labels))
	var records, input uint64
	blocksOK := true
	for i := range a.index {
		if err := a.readBlock(i, s); err != nil {
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				ce = a.blockCorrupt(i, err)
			}
			problems = append(problems, ce)
			blocksOK = false
			continue
		}
		for _, r := range s.recs {
			counts[s.ids[r.label]]++
			input += uint64(r.n)
		}
		records += uint64(len(s.recs))
	}
	if blocksOK {
		off := int64(a.footer.indexOff + a.footer.indexLen)
		if records != a.footer.records {
			problems = append(problems, archiveCorruptf(a.path, SectionFooter, off, "blocks hold %d records, footer declares %d", records, a.footer.records))
		}
		for id, c := range counts {
			if c != a.footer.labelCounts[id] {
				problems = append(problems, archiveCorruptf(a.path, SectionFooter, off, "blocks hold %d records labelled %q, footer declares %d", c, a.footer.labels[id], a.footer.labelCounts[id]))
			}
		}
		if input != a.footer.inputBytes {
			problems = append(problems, archiveCorruptf(a.path, SectionFooter, off, "blocks hold %d payload bytes, footer declares %d", input, a.footer.inputBytes))
		}
	}
	// The footer and index were checked at open; check the bytes on disk
	// still say the same.
	again := &Reader{path: a.path, f: a.f}
	if err := again.load(); err != nil {
		add(err)
	} else if !bytes.Equal(again.footer.append(nil), a.footer.append(nil)) || !bytes.Equal(archiveEncodeIndex(again.index), archiveEncodeIndex(a.index)) || again.size != a.size {
		add(archiveCorruptf(a.path, SectionFooter, int64(a.footer.indexOff), "footer or index on disk changed since the archive was opened"))
	}
	return problems
}
