package segment

import (
	"errors"
	"fmt"
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

// SegmentBase returns the base name of a segment path without any
// truncation marker suffix.
func SegmentBase(path string) string {
	b := filepath.Base(path)
	return strings.TrimSuffix(strings.TrimSuffix(b, ".START"), ".END")
}
