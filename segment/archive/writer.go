package archive

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/agentruntime/statejournal/internal/fsx"
)

// Record is one record of an archive. The archive treats Payload as
// opaque bytes and Label as an opaque string; the engine passes the surface
// id as the label, which gives per-label counts in the footer and lets
// readers skip blocks that hold no wanted label.
type Record struct {
	Seq     uint64 // strictly increasing within an archive, never 0
	Time    int64  // unix nanoseconds; need not be monotonic
	Label   string // at most MaxLabelSize bytes
	Payload []byte // at most MaxPayloadSize bytes
}

// WriterOptions tunes Write. The zero value is valid.
type WriterOptions struct {
	// BlockSize is the uncompressed size a block is filled to before it is
	// compressed: larger blocks compress better, smaller ones make point
	// reads cheaper. 0 means DefaultBlockSize (64 KiB); otherwise
	// it must lie in MinBlockSize..MaxBlockSize. A record
	// larger than BlockSize gets a block of its own.
	BlockSize int
	// Level is the zstd level. 0 means zstd.SpeedFastest, which on
	// heartbeat-like JSON compresses as well as SpeedDefault (about 11x)
	// and writes a third faster (see BenchmarkWriteArchive).
	Level zstd.EncoderLevel
	// Coalesced is stored in the footer as is: how many records the caller
	// dropped by coalescing before they reached the archive.
	Coalesced uint64
	// CreatedAt is stored in the footer; the zero value means time.Now().
	// Setting it makes the output byte-for-byte deterministic.
	CreatedAt time.Time
	// JournalID is stored in the footer as is: the id of the journal the
	// archive belongs to, so a reader can refuse an archive of another
	// journal. This package gives it no meaning.
	JournalID [JournalIDSize]byte
	// RangeFirst and RangeLast are the sequence range the archive
	// accounts for: its records plus those the caller dropped before they
	// reached it (Coalesced, or sequences it kept elsewhere). Both zero
	// store no range (readers then know only the records' own first and
	// last sequence). Otherwise every
	// record must lie inside the range (else ErrInvalidRecord),
	// and Coalesced must fit in what the records leave of it.
	RangeFirst, RangeLast uint64
	// FS is where the archive is written; nil means fsx.OS. Tests pass a
	// fault injector (fsx.Faulty) to fail a chosen write or fsync.
	FS fsx.FS
}

// Footer summarizes an archive. It is stored, checksummed, at the
// end of the file, so Open returns it without reading any block.
type Footer struct {
	Version     uint16            // format version, FormatVersion
	FirstSeq    uint64            // first record's sequence; 0 when empty
	LastSeq     uint64            // last record's sequence; 0 when empty
	MinTime     int64             // smallest record time (unix ns); 0 when empty
	MaxTime     int64             // largest record time (unix ns); 0 when empty
	Records     uint64            // records stored
	Coalesced   uint64            // records the caller dropped by coalescing (WriterOptions.Coalesced)
	LabelCounts map[string]uint64 // records per label; the map is the caller's to keep
	InputBytes  int64             // sum of the records' payload lengths
	FileBytes   int64             // size of the archive file
	Blocks      int               // number of compressed blocks
	CreatedAt   time.Time         // when the archive was written (UTC)
	// JournalID is the writer's WriterOptions.JournalID; zero in a
	// version 1 archive, which has none.
	JournalID [JournalIDSize]byte
	// RangeFirst..RangeLast is the sequence range the archive accounts
	// for (records and Coalesced); both zero when the writer stated none,
	// and always in a version 1 archive, whose range only its file name
	// states.
	RangeFirst, RangeLast uint64
	// Checksum is the footer's CRC32C: with the file name it fingerprints
	// an archive without reading its blocks.
	Checksum uint32
}

// CompressionRatio returns InputBytes/FileBytes, or 0 for an empty file.
func (f Footer) CompressionRatio() float64 {
	if f.FileBytes == 0 {
		return 0
	}
	return float64(f.InputBytes) / float64(f.FileBytes)
}

// Write writes the records next yields to a new archive at path and
// returns its footer. next returns (record, true, nil) for each record,
// (_, false, nil) at the end, or an error that aborts the write; the
// payload it returns need only stay valid until the next call, so a caller
// can stream any number of records through one buffer.
//
// Sequences must be non-zero and strictly increasing, labels and payloads
// within their limits; otherwise Write returns an error matching
// ErrInvalidRecord. An empty iterator writes a valid empty archive.
//
// The write is atomic and durable: records go to path+".tmp" in the same
// directory, which is fsynced, renamed to path (replacing any file there),
// and the directory is fsynced. When Write returns nil the archive
// survives a crash; when it returns an error no file exists under path
// unless one was there before (the temp file is removed), except that a
// failed directory fsync after the rename leaves the new archive in place
// but possibly not durable. A crash during the write leaves at most a
// ".tmp" file, which is never taken for an archive (ParseFileName
// rejects its name, Open finds no trailer) and is removed by
// fsx.SweepTemp.
func Write(path string, next func() (Record, bool, error), opts WriterOptions) (Footer, error) {
	enc, err := opts.prepare()
	if err != nil {
		return Footer{}, fmt.Errorf("write archive %s: %w", path, err)
	}

	fsys := fsx.Or(opts.FS)
	tmp := path + fsx.TempSuffix
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return Footer{}, fmt.Errorf("write archive: %w", err)
	}
	footer, err := newArchiveWriter(f, enc, opts).write(next, opts)
	if err == nil {
		err = f.Sync()
		if err != nil {
			err = fmt.Errorf("fsync %s: %w", tmp, err)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", tmp, cerr)
	}
	if err != nil {
		fsys.Remove(tmp)
		return Footer{}, fmt.Errorf("write archive %s: %w", path, err)
	}
	if archiveBeforeCommit != nil {
		archiveBeforeCommit(tmp)
	}
	if err := fsx.CommitTempFS(fsys, tmp, path); err != nil {
		return Footer{}, fmt.Errorf("write archive %s: %w", path, err)
	}
	return footer, nil
}

// prepare fills the options' defaults and checks them, and returns the
// zstd encoder of their level. Write and Measure both start here, so a
// dry run encodes exactly as the real run does.
func (opts *WriterOptions) prepare() (*zstd.Encoder, error) {
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.BlockSize < MinBlockSize || opts.BlockSize > MaxBlockSize {
		return nil, fmt.Errorf("block size %d outside %d..%d", opts.BlockSize, MinBlockSize, MaxBlockSize)
	}
	if opts.Level == 0 {
		opts.Level = archiveDefaultLevel
	}
	if opts.CreatedAt.IsZero() {
		opts.CreatedAt = time.Now()
	}
	return archiveEncoder(opts.Level)
}

// newArchiveWriter returns a writer of prepared options into dst.
func newArchiveWriter(dst io.Writer, enc *zstd.Encoder, opts WriterOptions) *archiveWriter {
	return &archiveWriter{
		bw:         bufio.NewWriterSize(dst, 256<<10),
		enc:        enc,
		blockSize:  opts.BlockSize,
		labelIDs:   make(map[string]uint32),
		blockLocal: make(map[string]uint32),
	}
}

// archiveBeforeCommit, when set (by crash tests only), runs after the temp
// file is complete and fsynced and before it is renamed into place.
var archiveBeforeCommit func(tmp string)

// archiveWriter builds one archive. It is used by one goroutine.
type archiveWriter struct {
	bw        *bufio.Writer
	enc       *zstd.Encoder
	off       int64 // bytes written so far
	blockSize int

	// the block being filled
	recBuf     []byte            // encoded records
	blockLocal map[string]uint32 // label -> index in blockLabels
	blockLabel []string          // the block's label table, in first-use order
	labelBytes int               // encoded size of the label table
	cur        archiveBlockHeader
	prevSeq    uint64
	prevTime   int64
	lastLabel  string // memo of the previous record's label...
	lastLocal  uint32 // ...and its index in the block's table

	// scratch for assembling and compressing a block
	rawBuf, compBuf, hdrBuf []byte

	// the archive so far
	index       []archiveIndexEntry
	labelIDs    map[string]uint32 // label -> provisional id (first-use order)
	labels      []string
	labelCounts []uint64
	lastID      uint32 // id of the previous record's label
	foot        archiveFooterDisk
}

func (w *archiveWriter) write(next func() (Record, bool, error), opts WriterOptions) (Footer, error) {
	w.foot = archiveFooterDisk{version: FormatVersion, createdAt: opts.CreatedAt.UnixNano(), coalesced: opts.Coalesced,
		journalID: opts.JournalID, rangeFirst: opts.RangeFirst, rangeLast: opts.RangeLast}
	ranged := opts.RangeFirst != 0 || opts.RangeLast != 0
	if ranged && (opts.RangeFirst == 0 || opts.RangeLast < opts.RangeFirst) {
		return Footer{}, fmt.Errorf("covered range %d..%d is invalid: %w", opts.RangeFirst, opts.RangeLast, ErrInvalidRecord)
	}
	if err := w.put(archiveAppendHeader(nil)); err != nil {
		return Footer{}, err
	}
	var lastSeq uint64
	for {
		rec, ok, err := next()
		if err != nil {
			return Footer{}, fmt.Errorf("next record after sequence %d: %w", lastSeq, err)
		}
		if !ok {
			break
		}
		switch {
		case rec.Seq == 0:
			return Footer{}, fmt.Errorf("record after sequence %d has sequence 0: %w", lastSeq, ErrInvalidRecord)
		case rec.Seq <= lastSeq:
			return Footer{}, fmt.Errorf("sequence %d follows %d, sequences must strictly increase: %w", rec.Seq, lastSeq, ErrInvalidRecord)
		case len(rec.Label) > MaxLabelSize:
			return Footer{}, fmt.Errorf("sequence %d: label is %d bytes, limit %d: %w", rec.Seq, len(rec.Label), MaxLabelSize, ErrInvalidRecord)
		case len(rec.Payload) > MaxPayloadSize:
			return Footer{}, fmt.Errorf("sequence %d: payload is %d bytes, limit %d: %w", rec.Seq, len(rec.Payload), MaxPayloadSize, ErrInvalidRecord)
		case ranged && (rec.Seq < opts.RangeFirst || rec.Seq > opts.RangeLast):
			return Footer{}, fmt.Errorf("sequence %d lies outside the covered range %d..%d: %w", rec.Seq, opts.RangeFirst, opts.RangeLast, ErrInvalidRecord)
		}
		if err := w.add(&rec); err != nil {
			return Footer{}, err
		}
		lastSeq = rec.Seq
	}
	if err := w.flushBlock(); err != nil {
		return Footer{}, err
	}
	if span := opts.RangeLast - opts.RangeFirst + 1; ranged && (opts.Coalesced > span || w.foot.records > span-opts.Coalesced) {
		return Footer{}, fmt.Errorf("%d records and %d coalesced do not fit the covered range %d..%d: %w", w.foot.records, opts.Coalesced, opts.RangeFirst, opts.RangeLast, ErrInvalidRecord)
	}
	return w.finish(opts)
}

func (w *archiveWriter) put(b []byte) error {
	n, err := w.bw.Write(b)
	w.off += int64(n)
	return err
}

// add appends one validated record to the current block, first sealing
// the block when the record would take it past the target size.
func (w *archiveWriter) add(r *Record) error {
	if w.cur.records > 0 {
		local, known := w.localLabel(r.Label)
		size := archiveUvarintLen(r.Seq-w.prevSeq) + archiveVarintLen(r.Time-w.prevTime) +
			archiveUvarintLen(uint64(local)) + archiveUvarintLen(uint64(len(r.Payload))) + len(r.Payload)
		if !known {
			size += archiveUvarintLen(uint64(len(r.Label))) + len(r.Label)
		}
		if len(w.recBuf)+w.labelBytes+size > w.blockSize {
			if err := w.flushBlock(); err != nil {
				return err
			}
		}
	}

	local, known := w.localLabel(r.Label)
	if !known {
		w.blockLocal[r.Label] = local
		w.blockLabel = append(w.blockLabel, r.Label)
		w.labelBytes += archiveUvarintLen(uint64(len(r.Label))) + len(r.Label)
	}
	w.lastLabel, w.lastLocal = r.Label, local

	if w.cur.records == 0 {
		w.recBuf = binary.AppendUvarint(w.recBuf, r.Seq)
		w.recBuf = binary.AppendVarint(w.recBuf, r.Time)
		w.cur.firstSeq, w.cur.minTime, w.cur.maxTime = r.Seq, r.Time, r.Time
	} else {
		w.recBuf = binary.AppendUvarint(w.recBuf, r.Seq-w.prevSeq)
		w.recBuf = binary.AppendVarint(w.recBuf, r.Time-w.prevTime)
		w.cur.minTime, w.cur.maxTime = min(w.cur.minTime, r.Time), max(w.cur.maxTime, r.Time)
	}
	w.recBuf = binary.AppendUvarint(w.recBuf, uint64(local))
	w.recBuf = binary.AppendUvarint(w.recBuf, uint64(len(r.Payload)))
	w.recBuf = append(w.recBuf, r.Payload...)
	w.cur.records++
	w.cur.lastSeq = r.Seq
	w.prevSeq, w.prevTime = r.Seq, r.Time

	if len(w.labels) == 0 || r.Label != w.labels[w.lastID] {
		id, ok := w.labelIDs[r.Label]
		if !ok {
			id = uint32(len(w.labels))
			w.labelIDs[r.Label] = id
			w.labels = append(w.labels, r.Label)
			w.labelCounts = append(w.labelCounts, 0)
		}
		w.lastID = id
	}
	w.labelCounts[w.lastID]++
	w.foot.inputBytes += uint64(len(r.Payload))
	return nil
}

// localLabel returns label's index in the current block's table, and
// whether it is already there (if not, the index it would get).
func (w *archiveWriter) localLabel(label string) (uint32, bool) {
	if w.cur.records > 0 && label == w.lastLabel {
		return w.lastLocal, true
	}
	if i, ok := w.blockLocal[label]; ok {
		return i, true
	}
	return uint32(len(w.blockLabel)), false
}

// flushBlock compresses the current block and writes it.
func (w *archiveWriter) flushBlock() error {
	if w.cur.records == 0 {
		return nil
	}
	raw := binary.AppendUvarint(w.rawBuf[:0], uint64(len(w.blockLabel)))
	for _, l := range w.blockLabel {
		raw = binary.AppendUvarint(raw, uint64(len(l)))
		raw = append(raw, l...)
	}
	raw = append(raw, w.recBuf...)
	w.rawBuf = raw
	w.compBuf = w.enc.EncodeAll(raw, w.compBuf[:0])

	h := w.cur
	h.compLen, h.rawLen = uint32(len(w.compBuf)), uint32(len(raw))
	w.hdrBuf = h.appendFields(w.hdrBuf[:0])
	h.crc = archiveBlockCRC(w.hdrBuf[:archiveBlockHeaderSize-4], w.compBuf)
	w.hdrBuf = binary.LittleEndian.AppendUint32(w.hdrBuf, h.crc)

	e := archiveIndexEntry{
		offset: w.off, length: int64(archiveBlockHeaderSize + len(w.compBuf)), rawLen: h.rawLen,
		firstSeq: h.firstSeq, lastSeq: h.lastSeq, minTime: h.minTime, maxTime: h.maxTime, records: h.records,
		labels: make([]uint32, 0, len(w.blockLabel)),
	}
	for _, l := range w.blockLabel {
		e.labels = append(e.labels, w.labelIDs[l])
	}
	if err := w.put(w.hdrBuf); err != nil {
		return err
	}
	if err := w.put(w.compBuf); err != nil {
		return err
	}
	w.index = append(w.index, e)

	if w.foot.records == 0 {
		w.foot.firstSeq, w.foot.minTime, w.foot.maxTime = h.firstSeq, h.minTime, h.maxTime
	}
	w.foot.lastSeq = h.lastSeq
	w.foot.minTime, w.foot.maxTime = min(w.foot.minTime, h.minTime), max(w.foot.maxTime, h.maxTime)
	w.foot.records += uint64(h.records)

	w.recBuf = w.recBuf[:0]
	w.blockLabel = w.blockLabel[:0]
	clear(w.blockLocal)
	w.labelBytes = 0
	w.cur = archiveBlockHeader{}
	w.lastLabel, w.lastLocal = "", 0
	return nil
}

// finish writes the index, footer and trailer and flushes the buffer.
func (w *archiveWriter) finish(opts WriterOptions) (Footer, error) {
	// Sort the label table so the footer is canonical, and renumber the
	// index's label ids accordingly.
	order := make([]uint32, len(w.labels)) // order[newID] = oldID
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(a, b uint32) int {
		switch {
		case w.labels[a] < w.labels[b]:
			return -1
		case w.labels[a] > w.labels[b]:
			return 1
		}
		return 0
	})
	renum := make([]uint32, len(w.labels)) // renum[oldID] = newID
	w.foot.labels = make([]string, len(order))
	w.foot.labelCounts = make([]uint64, len(order))
	for newID, oldID := range order {
		renum[oldID] = uint32(newID)
		w.foot.labels[newID] = w.labels[oldID]
		w.foot.labelCounts[newID] = w.labelCounts[oldID]
	}

	for i := range w.index {
		e := &w.index[i]
		for j, id := range e.labels {
			e.labels[j] = renum[id]
		}
		slices.Sort(e.labels)
	}
	idx := archiveEncodeIndex(w.index)
	w.foot.indexOff = uint64(w.off)
	w.foot.indexLen = uint64(len(idx))
	w.foot.indexCRC = archiveCRC(idx)
	w.foot.blocks = uint32(len(w.index))
	if len(idx) > archiveMaxIndexSize {
		return Footer{}, fmt.Errorf("index of %d blocks is %d bytes, over the %d limit; write smaller archives", len(w.index), len(idx), archiveMaxIndexSize)
	}
	foot := w.foot.append(nil)
	if len(foot) > archiveMaxFooterSize {
		return Footer{}, fmt.Errorf("footer of %d labels is %d bytes, over the %d limit", len(w.labels), len(foot), archiveMaxFooterSize)
	}
	if err := w.put(idx); err != nil {
		return Footer{}, err
	}
	if err := w.put(foot); err != nil {
		return Footer{}, err
	}
	w.foot.crc = archiveCRC(foot)
	if err := w.put(archiveAppendTrailer(nil, uint32(len(foot)), w.foot.crc)); err != nil {
		return Footer{}, err
	}
	if err := w.bw.Flush(); err != nil {
		return Footer{}, err
	}
	return w.foot.public(w.off), nil
}

// public converts the stored footer to the exported summary.
func (f *archiveFooterDisk) public(fileBytes int64) Footer {
	counts := make(map[string]uint64, len(f.labels))
	for i, l := range f.labels {
		counts[l] = f.labelCounts[i]
	}
	return Footer{
		Version:     f.version,
		FirstSeq:    f.firstSeq,
		LastSeq:     f.lastSeq,
		MinTime:     f.minTime,
		MaxTime:     f.maxTime,
		Records:     f.records,
		Coalesced:   f.coalesced,
		LabelCounts: counts,
		InputBytes:  int64(f.inputBytes),
		FileBytes:   fileBytes,
		Blocks:      int(f.blocks),
		CreatedAt:   time.Unix(0, f.createdAt).UTC(),
		JournalID:   f.journalID,
		RangeFirst:  f.rangeFirst,
		RangeLast:   f.rangeLast,
		Checksum:    f.crc,
	}
}

func archiveUvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func archiveVarintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return archiveUvarintLen(u)
}
