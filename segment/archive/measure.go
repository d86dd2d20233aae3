package archive

import (
	"fmt"
	"io"
)

// Measure encodes the records next yields exactly as Write
// would (same blocks, same compression, same index and footer) but into
// no file, and returns the footer Write would return: FileBytes
// is the size the archive file would have, byte for byte. Dry runs use
// it to predict a compaction exactly instead of guessing a ratio.
func Measure(next func() (Record, bool, error), opts WriterOptions) (Footer, error) {
	enc, err := opts.prepare()
	if err != nil {
		return Footer{}, fmt.Errorf("measure archive: %w", err)
	}
	footer, err := newArchiveWriter(io.Discard, enc, opts).write(next, opts)
	if err != nil {
		return Footer{}, fmt.Errorf("measure archive: %w", err)
	}
	return footer, nil
}
