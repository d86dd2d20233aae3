package archive

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// FileExt is the extension of archive files.
const FileExt = ".sjar"

const (
	archiveNamePrefix = "archive-"
	archiveSeqDigits  = 20 // enough for any uint64, so names sort by sequence
)

// FileName returns the file name of an archive holding sequences
// first..last, e.g. "archive-00000000000000000001-00000000000000004096.sjar".
// Names sort lexically in sequence order.
func FileName(first, last uint64) string {
	return fmt.Sprintf("%s%0*d-%0*d%s", archiveNamePrefix, archiveSeqDigits, first, archiveSeqDigits, last, FileExt)
}

// ParseFileName parses the base name of name as FileName
// writes it and returns its sequence range. It reports false for anything
// else — in particular for the ".tmp" file of an unfinished write, which
// must never be taken for an archive — and for a range with first > last.
func ParseFileName(name string) (first, last uint64, ok bool) {
	base := filepath.Base(name)
	rest, found := strings.CutPrefix(base, archiveNamePrefix)
	if !found {
		return 0, 0, false
	}
	rest, found = strings.CutSuffix(rest, FileExt)
	if !found || len(rest) != 2*archiveSeqDigits+1 || rest[archiveSeqDigits] != '-' {
		return 0, 0, false
	}
	first, ok1 := archiveParseDigits(rest[:archiveSeqDigits])
	last, ok2 := archiveParseDigits(rest[archiveSeqDigits+1:])
	if !ok1 || !ok2 || first > last {
		return 0, 0, false
	}
	return first, last, true
}

func archiveParseDigits(s string) (uint64, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}
