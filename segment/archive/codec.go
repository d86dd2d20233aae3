package archive

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The zstd encoders and the decoder are long-lived and shared: creating a
// zstd.Encoder per block costs far more than compressing 64 KiB.
// EncodeAll and DecodeAll are safe for concurrent use; neither starts a
// goroutine, so nothing here outlives its caller.

// archiveDefaultLevel is the level used when WriterOptions.Level is
// unset. See BenchmarkWriteArchive: on heartbeat-like JSON in 64 KiB
// blocks SpeedFastest compresses as well as SpeedDefault (about 11x: the
// redundancy is within a few hundred bytes, which both find) and writes
// about a third faster; SpeedBetterCompression gains nothing at half the
// speed.
const archiveDefaultLevel = zstd.SpeedFastest

var archiveEncoders struct {
	mu   sync.Mutex
	byLv map[zstd.EncoderLevel]*zstd.Encoder // guarded by mu
}

// archiveEncoder returns the shared encoder for level.
func archiveEncoder(level zstd.EncoderLevel) (*zstd.Encoder, error) {
	archiveEncoders.mu.Lock()
	defer archiveEncoders.mu.Unlock()
	if e := archiveEncoders.byLv[level]; e != nil {
		return e, nil
	}
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		// Every block carries a CRC32C over its compressed bytes, checked
		// before decompression; zstd's own content checksum (xxhash of
		// the output) would cost a tenth of the decode time and catch
		// nothing more on disk.
		zstd.WithEncoderCRC(false),
	)
	if err != nil {
		return nil, fmt.Errorf("create zstd encoder: %w", err)
	}
	if archiveEncoders.byLv == nil {
		archiveEncoders.byLv = make(map[zstd.EncoderLevel]*zstd.Encoder)
	}
	archiveEncoders.byLv[level] = e
	return e, nil
}

var archiveDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0), // as many concurrent DecodeAll calls as GOMAXPROCS
		// A block never decodes to more than archiveMaxBlockRaw, whatever
		// its frame header claims; DecodeAll additionally stops at the
		// capacity of the destination, which readers set to the length
		// the block header declares.
		zstd.WithDecoderMaxMemory(archiveMaxBlockRaw),
		zstd.WithDecodeAllCapLimit(true),
	)
})

// archiveDecompress decompresses one block into dst[:0], which must have
// room for exactly rawLen bytes; the result must be exactly rawLen long.
func archiveDecompress(comp []byte, rawLen uint32, dst []byte) ([]byte, error) {
	dec, err := archiveDecoder()
	if err != nil {
		return nil, fmt.Errorf("create zstd decoder: %w", err)
	}
	out, err := dec.DecodeAll(comp, dst[:0:rawLen])
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	if len(out) != int(rawLen) {
		return nil, fmt.Errorf("decompressed to %d bytes, header declares %d", len(out), rawLen)
	}
	return out, nil
}

// archiveScratch holds the buffers one block decode needs. Scans take one
// from archiveScratchPool per block, so a scan allocates nothing per
// record and, in steady state, nothing per block.
type archiveScratch struct {
	block  []byte // header + compressed bytes as read from the file
	rawBuf []byte // decompression buffer, kept at its largest capacity
	raw    []byte // decompressed contents of the current block, in rawBuf
	recs   []archiveRec
	labels [][]byte // the block's label table, sub-slices of raw
	names  []string // the block's labels as interned archive label strings
	ids    []uint32 // the block's labels as archive label ids
	sorted []uint32 // ids, sorted, to compare with the index
}

var archiveScratchPool = sync.Pool{New: func() any { return new(archiveScratch) }}

// archiveMaxPooled keeps one oversized block (a huge single record) from
// pinning its buffers in the pool.
const archiveMaxPooled = 1 << 20

func archiveGetScratch() *archiveScratch { return archiveScratchPool.Get().(*archiveScratch) }

func archivePutScratch(s *archiveScratch) {
	if cap(s.block) > archiveMaxPooled+archiveBlockHeaderSize || cap(s.rawBuf) > archiveMaxPooled ||
		cap(s.recs) > archiveMaxPooled/archiveMinRecordSize {
		return
	}
	clear(s.labels[:cap(s.labels)]) // drop references into raw
	clear(s.names[:cap(s.names)])
	s.labels, s.names, s.raw = s.labels[:0], s.names[:0], nil
	archiveScratchPool.Put(s)
}

// archiveGrow returns b resliced to n bytes, reallocating (with room to
// spare, so a run of growing blocks does not reallocate each time) only
// when its capacity is short.
func archiveGrow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n, max(n, min(2*cap(b), archiveMaxPooled)))
	}
	return b[:n]
}
