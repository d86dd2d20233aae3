package segment

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// HotSegment is one tidwall/wal segment file of the hot log. Its name is
// the sequence of its first entry, zero-padded to 20 digits.
type HotSegment struct {
	Path     string
	FirstSeq uint64
	Size     int64
}

// HotSegmentName returns the file name tidwall/wal gives the segment whose
// first entry has sequence first.
func HotSegmentName(first uint64) string { return fmt.Sprintf("%020d", first) }

// hotFile is a segment file as found in the directory, before the
// START/END markers of an interrupted tidwall/wal truncation are resolved.
type hotFile struct {
	name  string
	first uint64
	start bool
	end   bool
}

// HotFixup is a file operation that completes an interrupted tidwall/wal
// truncation (its ".START"/".END" protocol).
type HotFixup struct {
	Remove string // path to remove, or ""
	From   string // rename From → To when From != ""
	To     string
}

// ListHotSegments lists the hot log's segments in sequence order as
// tidwall/wal will see them once it has completed any interrupted
// truncation, and the file operations that completion takes. It changes
// nothing on disk: read-only callers use the list as it is, the writer
// applies the fixups with ApplyHotFixups before opening the log.
func ListHotSegments(dir string) ([]HotSegment, []HotFixup, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	var files []hotFile
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || len(name) < 20 {
			continue
		}
		first, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || first == 0 {
			continue
		}
		f := hotFile{name: name, first: first}
		switch {
		case len(name) == 20:
		case name[20:] == ".START":
			f.start = true
		case name[20:] == ".END":
			f.end = true
		default:
			continue
		}
		files = append(files, f)
	}
	// tidwall/wal sorts by name (ReadDir order); the 20-digit prefix makes
	// that sequence order, and "X" < "X.END" < "X.START".
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	startIdx, endIdx := -1, -1
	for i, f := range files {
		if f.start {
			startIdx = i
		} else if f.end && endIdx == -1 {
			endIdx = i
		}
	}
	if startIdx != -1 && endIdx != -1 {
		return nil, nil, fmt.Errorf("hot log %s: both a START and an END truncation marker exist: %w", dir, ErrCorrupt)
	}
	var fix []HotFixup
	path := func(n string) string { return filepath.Join(dir, n) }
	if startIdx != -1 {
		for i := 0; i < startIdx; i++ {
			fix = append(fix, HotFixup{Remove: path(files[i].name)})
		}
		files = append([]hotFile(nil), files[startIdx:]...)
		final := files[0].name[:20]
		fix = append(fix, HotFixup{From: path(files[0].name), To: path(final)})
		files[0].name = final
		files[0].start = false
	}
	if endIdx != -1 {
		for i := len(files) - 1; i > endIdx; i-- {
			fix = append(fix, HotFixup{Remove: path(files[i].name)})
		}
		files = append([]hotFile(nil), files[:endIdx+1]...)
		if len(files) > 1 && files[len(files)-2].first == files[len(files)-1].first {
			files = append(files[:len(files)-2], files[len(files)-1])
		}
		last := &files[len(files)-1]
		final := last.name[:20]
		fix = append(fix, HotFixup{From: path(last.name), To: path(final)})
		last.name = final
		last.end = false
	}
	segs := make([]HotSegment, 0, len(files))
	for _, f := range files {
		p := path(f.name)
		// Before fixups run, the content lives under the marker name.
		for _, fx := range fix {
			if fx.To == p {
				p = fx.From
			}
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		segs = append(segs, HotSegment{Path: p, FirstSeq: f.first, Size: fi.Size()})
	}
	return segs, fix, nil
}

// ScanFunc receives one decoded entry: the byte offset of its wal frame in
// the segment file, its sequence and its payload (valid only during the
// call). Returning false stops the scan.
type ScanFunc func(off int64, seq uint64, payload []byte) bool

// ScanResult says how far a segment scan got.
type ScanResult struct {
	Entries  int   // valid entries seen
	GoodEnd  int64 // offset just past the last valid entry
	Size     int64 // file size at scan time
	Problem  *CorruptionError
	Stopped  bool // the callback stopped the scan
	LastSeq  uint64
	NextSeq  uint64 // the sequence the next entry should carry
	TailOnly bool   // Problem (if any) is tail damage: no valid entry follows it
}

// maxEntry bounds the size of one entry we are willing to read; anything
// larger is treated as a damaged length, never allocated.
const maxEntry = 64 << 20

// ScanHotSegment reads seg from the start, decoding and checking every
// entry against the sequence its position implies (seg.FirstSeq, +1, ...).
// It stops at the first damage and describes it in the result (it returns
// an error only for I/O failures). When damage is found it also decides
// whether it is tail damage (no valid envelope follows it anywhere in the
// file) and classifies it: torn tail, zero-filled tail, or a bad checksum.
func ScanHotSegment(seg HotSegment, fn ScanFunc) (ScanResult, error) {
	return ScanHotSegmentFrom(seg, 0, seg.FirstSeq, fn)
}

// ScanHotSegmentFrom is ScanHotSegment starting at byte offset start,
// where the entry with sequence seq begins (a position an earlier scan
// returned). Followers use it to read only what was appended.
func ScanHotSegmentFrom(seg HotSegment, start int64, seq uint64, fn ScanFunc) (ScanResult, error) {
	var ff ScanFlagsFunc
	if fn != nil {
		ff = func(off int64, seq uint64, _ byte, payload []byte) bool { return fn(off, seq, payload) }
	}
	return ScanHotSegmentFlags(seg, start, seq, ff)
}

// ScanFlagsFunc is a ScanFunc that also receives the envelope flags.
type ScanFlagsFunc func(off int64, seq uint64, flags byte, payload []byte) bool

// ScanHotSegmentFlags is ScanHotSegmentFrom with envelope flags.
func ScanHotSegmentFlags(seg HotSegment, start int64, seq uint64, fn ScanFlagsFunc) (ScanResult, error) {
	var ef ScanEntryFunc
	if fn != nil {
		ef = func(e HotEntry) bool { return fn(e.Off, e.Seq, e.Flags, e.Payload) }
	}
	return ScanHotSegmentEntries(seg, start, seq, ef)
}

// HotEntry is one decoded hot-log entry: its envelope, the byte offset of
// its wal frame in the segment file and the frame's length (length
// prefix and envelope).
type HotEntry struct {
	Envelope
	Off      int64
	FrameLen int64
}

// ScanEntryFunc receives one decoded entry (its payload is valid only
// during the call). Returning false stops the scan.
type ScanEntryFunc func(e HotEntry) bool

// ScanHotSegmentEntries is ScanHotSegmentFrom handing the callback the
// whole entry: envelope version, flags, commit time and frame length.
func ScanHotSegmentEntries(seg HotSegment, start int64, seq uint64, fn ScanEntryFunc) (ScanResult, error) {
	f, err := os.Open(seg.Path)
	if err != nil {
		return ScanResult{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ScanResult{}, err
	}
	res := ScanResult{Size: fi.Size(), NextSeq: seq, GoodEnd: start}
	if start > res.Size {
		return res, fmt.Errorf("scan %s from %d: the file has only %d bytes", seg.Path, start, res.Size)
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return res, err
	}
	br := bufio.NewReaderSize(f, 256<<10)
	var buf []byte
	off := start
	for off < res.Size {
		length, n, lerr := readUvarint(br)
		if lerr != nil {
			if lerr == io.EOF || lerr == io.ErrUnexpectedEOF {
				res.Problem = &CorruptionError{Segment: seg.Path, Offset: off, Sequence: res.NextSeq, Cause: CauseTornTail,
					Err: fmt.Errorf("%w: length prefix cut short", ErrShortEntry)}
				break
			}
			if errors.Is(lerr, errVarintOverflow) {
				res.Problem = &CorruptionError{Segment: seg.Path, Offset: off, Sequence: res.NextSeq, Cause: CauseBadLength, Err: fmt.Errorf("%w: length prefix overflows", ErrCorrupt)}
				break
			}
			return res, fmt.Errorf("read %s: %w", seg.Path, lerr)
		}
		remain := res.Size - off - int64(n)
		if length > uint64(remain) || length > maxEntry {
			res.Problem = &CorruptionError{Segment: seg.Path, Offset: off, Sequence: res.NextSeq, Cause: CauseTornTail,
				Err: fmt.Errorf("%w: entry claims %d bytes, %d remain", ErrShortEntry, length, remain)}
			break
		}
		if cap(buf) < int(length) {
			buf = make([]byte, length, max(int(length), 4096))
		}
		buf = buf[:length]
		if _, err := io.ReadFull(br, buf); err != nil {
			return res, fmt.Errorf("read %s at %d: %w", seg.Path, off, err)
		}
		env, derr := DecodeEnvelopeEntry(buf)
		seq := env.Seq
		if derr == nil && seq != res.NextSeq {
			derr = fmt.Errorf("%w: envelope says sequence %d", ErrCorrupt, seq)
			res.Problem = &CorruptionError{Segment: seg.Path, Offset: off, Sequence: res.NextSeq, Cause: CauseBadSequence, Err: derr}
			break
		}
		if derr != nil {
			cause := CauseBadChecksum
			if errors.Is(derr, ErrUnsupportedVersion) {
				cause = CauseUnsupported
			} else if len(buf) == 0 || zeroSectorTail(buf, off+int64(n)) {
				// A sector-aligned run of zeros to the end of the entry
				// is a write whose last sectors never reached the disk
				// (JSON payloads hold no NUL bytes).
				cause = CauseZeroTail
			}
			res.Problem = &CorruptionError{Segment: seg.Path, Offset: off, Sequence: res.NextSeq, Cause: cause, Err: derr}
			break
		}
		if fn != nil && !fn(HotEntry{Envelope: env, Off: off, FrameLen: int64(n) + int64(length)}) {
			res.Stopped = true
			res.Entries++
			res.LastSeq = seq
			res.NextSeq = seq + 1
			res.GoodEnd = off + int64(n) + int64(length)
			return res, nil
		}
		res.Entries++
		res.LastSeq = seq
		res.NextSeq = seq + 1
		off += int64(n) + int64(length)
		res.GoodEnd = off
	}
	if res.Problem != nil {
		if err := classifyTail(f, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// classifyTail decides whether the damage at res.Problem is tail damage (a
// crash artefact) or interior damage (valid data follows). Any envelope
// with a valid checksum and a later sequence found after the damage proves
// the damage is interior: cutting there would lose data that was written
// after it, possibly acknowledged.
func classifyTail(f *os.File, res *ScanResult) error {
	p := res.Problem
	rest := res.Size - p.Offset
	if rest > 256<<20 {
		rest = 256 << 20
	}
	b := make([]byte, rest)
	if _, err := f.ReadAt(b, p.Offset); err != nil && err != io.EOF {
		return fmt.Errorf("read %s tail: %w", p.Segment, err)
	}
	if allZero(b) {
		p.Cause = CauseZeroTail
		res.TailOnly = true
		return nil
	}
	if validAfter(b, p.Sequence) {
		if p.Cause == CauseTornTail || p.Cause == CauseZeroTail {
			p.Cause = CauseBadLength
		}
		res.TailOnly = false
		return nil
	}
	switch p.Cause {
	case CauseTornTail, CauseZeroTail:
		res.TailOnly = true
	default:
		// A complete entry with a bad checksum and no zeros is a flipped
		// byte, not a crash artefact, even at the very end of the file.
		res.TailOnly = false
	}
	return nil
}

// NextFrame finds in data, at or after offset from, the first wal frame
// (length prefix and envelope) whose envelope is valid with a sequence of
// at least minSeq. It returns the offset of the frame's length prefix and
// its sequence, or -1. Damage scans use it to tell interior damage (valid
// data follows) from a torn tail, and repair to resume after damage.
func NextFrame(data []byte, from int, minSeq uint64) (int, uint64) {
	for i := max(from, 1); i+EnvelopeHeaderSizeV1 < len(data); i++ {
		if data[i] != EnvelopeMagic || (data[i+1] != EnvelopeVersion1 && data[i+1] != EnvelopeVersion2) {
			continue
		}
		// The length prefix sits just before the magic; try every width
		// it could have.
		for n := 1; n <= binary.MaxVarintLen64 && n <= i-max(from-1, 0); n++ {
			l, m := binary.Uvarint(data[i-n : i])
			if m != n || l < EnvelopeHeaderSizeV1 || uint64(len(data)-i) < l {
				continue
			}
			if seq, _, err := DecodeEnvelope(data[i : i+int(l)]); err == nil && seq >= minSeq {
				return i - n, seq
			}
		}
	}
	return -1, 0
}

// validAfter reports whether b (the bytes from a damaged frame to the end
// of the file) holds, after its first byte, a valid envelope with a
// sequence of at least minSeq: either a whole frame, or an envelope that
// runs to the end of the file behind a damaged length prefix of any
// width. Either proves the damage is not a torn tail.
func validAfter(b []byte, minSeq uint64) bool {
	if off, _ := NextFrame(b, 1, minSeq); off >= 0 {
		return true
	}
	for i := 1; i <= binary.MaxVarintLen64 && i < len(b); i++ {
		if seq, _, err := DecodeEnvelope(b[i:]); err == nil && seq >= minSeq {
			return true
		}
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// sectorSize is the granularity at which a crash can lose written data.
const sectorSize = 512

// zeroSectorTail reports whether entry (which starts at file offset
// start) ends in a run of at least two zero bytes that begins on a sector
// boundary: the shape a lost sector leaves, which a flipped byte cannot.
func zeroSectorTail(entry []byte, start int64) bool {
	end := len(entry)
	i := end
	for i > 0 && entry[i-1] == 0 {
		i--
	}
	if end-i < 2 {
		return false
	}
	// Some sector boundary inside the zero run [i, end).
	first := (start + int64(i) + sectorSize - 1) / sectorSize * sectorSize
	return first < start+int64(end)-1
}

var errVarintOverflow = errors.New("uvarint overflows 64 bits")

// readUvarint reads a uvarint and reports how many bytes it took.
func readUvarint(r io.ByteReader) (uint64, int, error) {
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return x, i, err
		}
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return x, i + 1, errVarintOverflow
			}
			return x | uint64(c)<<s, i + 1, nil
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return x, binary.MaxVarintLen64, errVarintOverflow
}

// SegmentBase returns the base name of a segment path without any
// truncation marker suffix.
func SegmentBase(path string) string {
	b := filepath.Base(path)
	return strings.TrimSuffix(strings.TrimSuffix(b, ".START"), ".END")
}
