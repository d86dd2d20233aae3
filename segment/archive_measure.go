package segment

import (
	"bufio"
	"fmt"
	"io"
	"time"
)

// MeasureArchive encodes the records next yields exactly as WriteArchive
// would (same blocks, same compression, same index and footer) but into
// no file, and returns the footer WriteArchive would return: FileBytes
// is the size the archive file would have, byte for byte. Dry runs use
// it to predict a compaction exactly instead of guessing a ratio.
func MeasureArchive(next func() (ArchiveRecord, bool, error), opts ArchiveWriterOptions) (ArchiveFooter, error) {
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultArchiveBlockSize
	}
	if opts.BlockSize < MinArchiveBlockSize || opts.BlockSize > MaxArchiveBlockSize {
		return ArchiveFooter{}, fmt.Errorf("measure archive: block size %d outside %d..%d", opts.BlockSize, MinArchiveBlockSize, MaxArchiveBlockSize)
	}
	if opts.Level == 0 {
		opts.Level = archiveDefaultLevel
	}
	if opts.CreatedAt.IsZero() {
		opts.CreatedAt = time.Now()
	}
	enc, err := archiveEncoder(opts.Level)
	if err != nil {
		return ArchiveFooter{}, fmt.Errorf("measure archive: %w", err)
	}
	w := &archiveWriter{
		bw:         bufio.NewWriterSize(io.Discard, 256<<10),
		enc:        enc,
		blockSize:  opts.BlockSize,
		labelIDs:   make(map[string]uint32),
		blockLocal: make(map[string]uint32),
	}
	footer, err := w.write(next, opts)
	if err != nil {
		return ArchiveFooter{}, fmt.Errorf("measure archive: %w", err)
	}
	return footer, nil
}
