package segment

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// ScanOptions says where a scan of a hot segment starts and what the
// segment is.
type ScanOptions struct {
	// From is the byte offset of the frame the scan starts at and Seq the
	// sequence that frame must hold: a position an earlier scan of the
	// same segment reached (ScanResult.GoodEnd and NextSeq). Both zero
	// start at the beginning of the segment (sequence HotSegment.FirstSeq).
	From int64
	Seq  uint64
	// Newest says the segment is the newest of the hot log, the one the
	// writer appends to. Only there can a crash leave a torn or
	// zero-filled tail (tidwall/wal fsyncs a segment before it starts the
	// next), so only there is damage called tail damage
	// (CorruptionError.Tail).
	Newest bool
}

// HotEntry is one decoded hot-log entry: its envelope, the byte offset of
// its wal frame in the segment file and the frame's length (length
// prefix and envelope).
type HotEntry struct {
	Envelope
	Off      int64
	FrameLen int64
}

// ScanResult says how far a segment scan got. Whether it found damage is
// not here: Scan returns damage as its error, so that no caller can take
// a damaged segment for a clean one by forgetting to look.
type ScanResult struct {
	Entries int    // valid entries seen
	GoodEnd int64  // offset just past the last valid entry
	Size    int64  // file size at scan time
	Stopped bool   // the callback stopped the scan
	LastSeq uint64 // the sequence of the last valid entry (0 without one)
	NextSeq uint64 // the sequence the next entry should carry
}

// maxEntry bounds the size of one entry we are willing to read; anything
// larger is treated as a damaged length, never allocated.
const maxEntry = 64 << 20

// Scan reads seg from the position opts names, decoding and checking every
// entry (length against what remains, magic, version, checksum) against
// the sequence its position implies, and hands each valid entry to fn (its
// payload is valid only during the call; fn may be nil). fn returning
// false stops the scan cleanly: the result says Stopped and nothing past
// that entry was read.
//
// Scan is the one reader of hot-segment frames in sequence; its verdict is
// its error:
//
//   - nil: every byte from the start position to the end of the file is a
//     valid entry (GoodEnd == Size), or fn stopped the scan;
//   - a *CorruptionError (matching ErrCorrupt, or ErrUnsupportedVersion
//     for an envelope version this build does not know): the first damage,
//     with segment, offset, expected sequence and cause. The result still
//     says how far the valid entries reach (GoodEnd, NextSeq). The error's
//     Tail says whether it is tail damage, the shape a crash leaves in the
//     newest segment (see TailDamage and the package documentation);
//   - any other error: the file could not be read.
func Scan(seg HotSegment, opts ScanOptions, fn func(HotEntry) bool) (ScanResult, error) {
	start, seq := opts.From, opts.Seq
	if seq == 0 {
		if start != 0 {
			return ScanResult{}, fmt.Errorf("scan %s from offset %d: no sequence given for the frame there", seg.Path, start)
		}
		seq = seg.FirstSeq
	}
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
	var problem *CorruptionError
	off := start
	for off < res.Size {
		length, n, lerr := readUvarint(br)
		if lerr != nil {
			if lerr == io.EOF || lerr == io.ErrUnexpectedEOF {
				problem = &CorruptionError{Segment: seg.Path, Offset: off, Sequence: res.NextSeq, Cause: CauseTornTail,
					Err: fmt.Errorf("%w: length prefix cut short", ErrShortEntry)}
				break
			}
			if errors.Is(lerr, errVarintOverflow) {
				problem = &CorruptionError{Segment: seg.Path, Offset: off, Sequence: res.NextSeq, Cause: CauseBadLength, Err: fmt.Errorf("%w: length prefix overflows", ErrCorrupt)}
				break
			}
			return res, fmt.Errorf("read %s: %w", seg.Path, lerr)
		}
		remain := res.Size - off - int64(n)
		if length > uint64(remain) || length > maxEntry {
			problem = &CorruptionError{Segment: seg.Path, Offset: off, Sequence: res.NextSeq, Cause: CauseTornTail,
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
		env, derr := DecodeEnvelope(buf)
		if derr == nil && env.Seq != res.NextSeq {
			derr = fmt.Errorf("%w: envelope says sequence %d", ErrCorrupt, env.Seq)
			problem = &CorruptionError{Segment: seg.Path, Offset: off, Sequence: res.NextSeq, Cause: CauseBadSequence, Err: derr}
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
			problem = &CorruptionError{Segment: seg.Path, Offset: off, Sequence: res.NextSeq, Cause: cause, Err: derr}
			break
		}
		res.Entries++
		res.LastSeq = env.Seq
		res.NextSeq = env.Seq + 1
		off += int64(n) + int64(length)
		res.GoodEnd = off
		if fn != nil && !fn(HotEntry{Envelope: env, Off: off - int64(n) - int64(length), FrameLen: int64(n) + int64(length)}) {
			res.Stopped = true
			return res, nil
		}
	}
	if problem == nil {
		return res, nil
	}
	if err := classifyTail(f, res.Size, problem); err != nil {
		return res, err
	}
	problem.Tail = problem.Tail && opts.Newest
	return res, problem
}

// TailDamage returns the damage err carries when it is tail damage: the
// shape a crash leaves at the end of the newest segment (no valid entry
// follows it), which was never acknowledged and which the writer may cut
// into quarantine (RecoverTail). Any other error, damage or not, returns
// false.
func TailDamage(err error) (*CorruptionError, bool) {
	var ce *CorruptionError
	if errors.As(err, &ce) && ce.Tail {
		return ce, true
	}
	return nil, false
}

// classifyTail decides whether the damage p is tail damage (a crash
// artefact) or interior damage (valid data follows) and sets p.Tail. Any
// envelope with a valid checksum and a later sequence found after the
// damage proves the damage is interior: cutting there would lose data
// that was written after it, possibly acknowledged. size is the file's.
func classifyTail(f *os.File, size int64, p *CorruptionError) error {
	rest := size - p.Offset
	if rest > 256<<20 {
		rest = 256 << 20
	}
	b := make([]byte, rest)
	if _, err := f.ReadAt(b, p.Offset); err != nil && err != io.EOF {
		return fmt.Errorf("read %s tail: %w", p.Segment, err)
	}
	if allZero(b) {
		p.Cause = CauseZeroTail
		p.Tail = true
		return nil
	}
	if validAfter(b, p.Sequence) {
		if p.Cause == CauseTornTail || p.Cause == CauseZeroTail {
			p.Cause = CauseBadLength
		}
		p.Tail = false
		return nil
	}
	switch p.Cause {
	case CauseTornTail, CauseZeroTail:
		p.Tail = true
	default:
		// A complete entry with a bad checksum and no zeros is a flipped
		// byte, not a crash artefact, even at the very end of the file.
		p.Tail = false
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
			if e, err := DecodeEnvelope(data[i : i+int(l)]); err == nil && e.Seq >= minSeq {
				return i - n, e.Seq
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
		if e, err := DecodeEnvelope(b[i:]); err == nil && e.Seq >= minSeq {
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
