package archive

import (
	"bufio"
	"fmt"
	"io"
	"time"
)

// Measure encodes the records next yields exactly as Write
// would (same blocks, same compression, same index and footer) but into
// no file, and returns the footer Write would return: FileBytes
// is the size the archive file would have, byte for byte. Dry runs use
// it to predict a compaction exactly instead of guessing a ratio.
func Measure(next func() (Record, bool, error), opts WriterOptions) (Footer, error) {
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.BlockSize < MinBlockSize || opts.BlockSize > MaxBlockSize {
		return Footer{}, fmt.Errorf("measure archive: block size %d outside %d..%d", opts.BlockSize, MinBlockSize, MaxBlockSize)
	}
	if opts.Level == 0 {
		opts.Level = archiveDefaultLevel
	}
	if opts.CreatedAt.IsZero() {
		opts.CreatedAt = time.Now()
	}
	enc, err := archiveEncoder(opts.Level)
	if err != nil {
		return Footer{}, fmt.Errorf("measure archive: %w", err)
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
		return Footer{}, fmt.Errorf("measure archive: %w", err)
	}
	return footer, nil
}
