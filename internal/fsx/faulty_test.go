package fsx

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Every step of a whole-file replacement that fails leaves the old
// contents under the name and no temp file, and the error carries the
// errno the fault chose.
func TestWriteFileAtomicFSLeavesTheOldContentsWhenAStepFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		ft   Fault
		want error
	}{
		{"no space on the temp file's open", Fault{Op: OpOpen, Path: "state.json.tmp", Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"no space in the middle of the write", Fault{Op: OpWrite, Path: "state.json.tmp", Short: 3, Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"a short write without an errno", Fault{Op: OpWrite, Path: "state.json.tmp", Short: 1}, io.ErrShortWrite},
		{"an EIO on the temp file's fsync", Fault{Op: OpSync, Path: "state.json.tmp", Err: syscall.EIO}, syscall.EIO},
		{"an EIO on the rename", Fault{Op: OpRename, Path: "state.json", Err: syscall.EIO}, syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "state.json")
			if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			fsys := NewFaulty(OS, tc.ft)
			err := WriteFileAtomicFS(fsys, p, []byte("new contents"), 0o644)
			if !errors.Is(err, tc.want) {
				t.Fatalf("WriteFileAtomicFS = %v, want an error matching %v", err, tc.want)
			}
			if fsys.Fired() != 1 {
				t.Fatalf("the fault fired %d times, want once", fsys.Fired())
			}
			if b, _ := os.ReadFile(p); string(b) != "old" {
				t.Fatalf("%s holds %q after the failure, want the old contents", p, b)
			}
			if _, err := os.Stat(p + TempSuffix); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the temp file is left behind: %v", err)
			}
		})
	}
}

// Nth counts only the calls the fault matches: the second fsync of one
// file fails, the fsyncs of another file and the first of this one do not.
func TestFaultyFailsOnlyTheNthMatchingCall(t *testing.T) {
	dir := t.TempDir()
	fsys := NewFaulty(nil, Fault{Op: OpSync, Path: "a", Nth: 2, Err: syscall.EIO})
	open := func(name string) File {
		f, err := fsys.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	a, b := open("a"), open("b")
	steps := []struct {
		f    File
		fail bool
	}{{a, false}, {b, false}, {b, false}, {a, true}, {a, false}}
	for i, s := range steps {
		err := s.f.Sync()
		if s.fail != (err != nil) || (s.fail && !errors.Is(err, syscall.EIO)) {
			t.Fatalf("sync %d of %s: %v, want failure %v", i, s.f.Name(), err, s.fail)
		}
	}
	var pe *os.PathError
	fsys.Reset()
	fsys.Add(Fault{Op: OpRemove, Err: syscall.EROFS})
	if err := fsys.Remove(filepath.Join(dir, "b")); !errors.As(err, &pe) || pe.Op != "remove" || !errors.Is(err, syscall.EROFS) {
		t.Fatalf("remove under a fault for every call: %v, want an *os.PathError for remove matching EROFS", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); err != nil {
		t.Fatalf("a failed remove removed the file: %v", err)
	}
}

// Before runs for a selected call whose Err is nil, and the call then
// reaches the base FS.
func TestFaultyBeforeWithoutAnErrorOnlyDelays(t *testing.T) {
	dir := t.TempDir()
	ran := 0
	fsys := NewFaulty(OS, Fault{Op: OpSyncDir, Before: func() { ran++ }})
	if err := fsys.SyncDir(dir); err != nil || ran != 1 {
		t.Fatalf("SyncDir = %v with Before run %d times, want nil and once", err, ran)
	}
}

// A Path ending in "/" selects the files directly inside a directory of
// that name, and nothing else.
func TestFaultyDirectoryPathSelectsItsFiles(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "hot"), 0o755)
	fsys := NewFaulty(OS, Fault{Op: OpOpen, Path: "hot/", Err: syscall.EIO})
	for _, tc := range []struct {
		name string
		fail bool
	}{{"hot/0001", true}, {"hot-0001", false}, {"state.json", false}} {
		f, err := fsys.OpenFile(filepath.Join(dir, tc.name), os.O_CREATE|os.O_WRONLY, 0o644)
		if tc.fail != (err != nil) {
			t.Fatalf("open %s: %v, want failure %v", tc.name, err, tc.fail)
		}
		if err == nil {
			f.Close()
		}
	}
}
