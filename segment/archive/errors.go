package archive

import (
	"errors"
	"fmt"
)

// Sentinel errors of the archive format. Callers match them with errors.Is.
var (
	// ErrCorrupt marks an archive whose bytes do not follow the
	// format: a bad magic, a checksum mismatch, a length that points outside
	// the file, a block that does not decompress or decode, a count that
	// disagrees with the index or footer. Every *CorruptionError
	// matches it. An archive is never repaired implicitly.
	ErrCorrupt = errors.New("archive: corrupt archive")

	// ErrUnsupportedVersion marks an archive written in a format
	// version (or with feature flags) this build does not know. It is never
	// reported as corruption and never repaired: a newer build reads it.
	ErrUnsupportedVersion = errors.New("archive: unsupported archive version")

	// ErrInvalidRecord marks a record Write refuses: a
	// sequence that is zero or not strictly increasing, or a label or
	// payload over its size limit. Nothing is written when it is returned.
	ErrInvalidRecord = errors.New("archive: invalid archive record")

	// ErrClosed is returned by reads on a Reader after Close.
	ErrClosed = errors.New("archive: archive is closed")
)

// Sections of an archive file named by CorruptionError.Section.
const (
	SectionHeader  = "header"
	SectionBlock   = "block"
	SectionIndex   = "index"
	SectionFooter  = "footer"
	SectionTrailer = "trailer"
)

// CorruptionError says where an archive is damaged. Block is the
// index of the damaged block, or -1 when the damage is in the header,
// index, footer or trailer (Section says which). Offset is the file offset
// of the damaged structure (the start of the block, or of the section).
//
// It matches ErrCorrupt with errors.Is, and also whatever Err wraps
// (for example a zstd decoding error).
type CorruptionError struct {
	Path    string // archive file path
	Section string // one of the ArchiveSection* constants
	Block   int    // damaged block index, -1 outside blocks
	Offset  int64  // file offset of the damaged structure
	Err     error  // what is wrong, never nil
}

func (e *CorruptionError) Error() string {
	if e.Block >= 0 {
		return fmt.Sprintf("archive %s: corrupt block %d at offset %d: %v", e.Path, e.Block, e.Offset, e.Err)
	}
	return fmt.Sprintf("archive %s: corrupt %s at offset %d: %v", e.Path, e.Section, e.Offset, e.Err)
}

// Unwrap returns ErrCorrupt and the detailed cause, so errors.Is
// matches both.
func (e *CorruptionError) Unwrap() []error {
	return []error{ErrCorrupt, e.Err}
}

// archiveCorruptf builds a corruption error outside blocks.
func archiveCorruptf(path, section string, off int64, format string, args ...any) *CorruptionError {
	return &CorruptionError{Path: path, Section: section, Block: -1, Offset: off, Err: fmt.Errorf(format, args...)}
}
