package fsx

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Op names an operation of FS or File, for a Fault to match.
type Op string

// The operations a Fault can target.
const (
	OpOpen     Op = "open"     // FS.OpenFile
	OpWrite    Op = "write"    // File.Write
	OpSync     Op = "sync"     // File.Sync
	OpTruncate Op = "truncate" // File.Truncate
	OpClose    Op = "close"    // File.Close
	OpRename   Op = "rename"   // FS.Rename (matched on either name)
	OpRemove   Op = "remove"   // FS.Remove
	OpReadDir  Op = "readdir"  // FS.ReadDir
	OpMkdir    Op = "mkdir"    // FS.Mkdir
	OpSyncDir  Op = "syncdir"  // FS.SyncDir
)

// Fault is one failure Faulty injects: the Nth call of Op on a path
// ending in Path fails with Err.
type Fault struct {
	Op Op
	// Path selects the calls by name: a call matches when its cleaned
	// path ends with Path ("" matches every call of Op). Use a base name
	// ("index.ckpt.tmp") or a tail with its directory ("state/horizon.json");
	// a Path ending in "/" ("hot/") matches every file directly inside a
	// directory of that name.
	Path string
	// Nth is the matching call that fails, counting from 1; 0 fails every
	// matching call.
	Nth int
	// Err is the error the call returns, wrapped in an *os.PathError (an
	// *os.LinkError for a rename) as the os package would, so errors.Is
	// finds the errno (syscall.ENOSPC, syscall.EIO). When Err is nil the
	// call is not failed; Before still runs.
	Err error
	// Short, for OpWrite, writes the first Short bytes of the buffer
	// before failing (a short write, as a full disk makes); Err nil then
	// means io.ErrShortWrite.
	Short int
	// Before, when set, runs before each selected call, outside any lock
	// of Faulty (a test parks the call in it).
	Before func()
}

// Faulty is an FS that passes every call to a base FS except the ones its
// faults select. It is safe for concurrent use. Tests use it where no
// real limit produces the failure on demand (an EIO on a rename, an fsync
// that fails once); real limits (RLIMIT_FSIZE, a full tmpfs, a read-only
// directory) are tested with real processes beside it.
type Faulty struct {
	base FS

	mu     sync.Mutex
	faults []*faultState // guarded by mu
	fired  int           // guarded by mu: calls failed or held so far
}

type faultState struct {
	Fault
	seen int // matching calls so far, guarded by Faulty.mu
}

// NewFaulty returns a Faulty over base (OS when nil) with faults.
func NewFaulty(base FS, faults ...Fault) *Faulty {
	f := &Faulty{base: Or(base)}
	for _, ft := range faults {
		f.Add(ft)
	}
	return f
}

// Add adds a fault; its count of matching calls starts now.
func (f *Faulty) Add(ft Fault) {
	f.mu.Lock()
	f.faults = append(f.faults, &faultState{Fault: ft})
	f.mu.Unlock()
}

// Reset removes every fault: later calls all reach the base FS.
func (f *Faulty) Reset() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// Fired returns how many calls a fault selected so far.
func (f *Faulty) Fired() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

// pick returns what the faults that select this call of op on paths do,
// merged, or nil when none does: every selected fault's Before runs, in
// the order they were added, and the first selected fault with an error
// (or a short write) decides how the call fails. Every fault counts the
// call, selected or not, so several faults on one operation keep their
// own Nth.
func (f *Faulty) pick(op Op, paths ...string) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out *Fault
	var befores []func()
	for _, ft := range f.faults {
		if ft.Op != op || !matchAny(ft.Path, paths) {
			continue
		}
		ft.seen++
		if ft.Nth != 0 && ft.seen != ft.Nth {
			continue
		}
		f.fired++
		if out == nil {
			out = &Fault{Op: op}
		}
		if ft.Before != nil {
			befores = append(befores, ft.Before)
		}
		if out.Err == nil && out.Short == 0 {
			out.Err, out.Short = ft.Err, ft.Short
		}
	}
	if len(befores) > 0 {
		out.Before = func() {
			for _, b := range befores {
				b()
			}
		}
	}
	return out
}

func matchAny(suffix string, paths []string) bool {
	for _, p := range paths {
		p = filepath.Clean(p)
		if strings.HasSuffix(suffix, "/") {
			p = filepath.Dir(p) + "/"
		}
		if strings.HasSuffix(p, suffix) {
			return true
		}
	}
	return false
}

// inject runs the fault's Before and returns its error for path, or nil.
func inject(ft *Fault, op Op, path string) error {
	if ft == nil {
		return nil
	}
	if ft.Before != nil {
		ft.Before()
	}
	if ft.Err == nil {
		return nil
	}
	return &os.PathError{Op: string(op), Path: path, Err: ft.Err}
}

// OpenFile implements FS.
func (f *Faulty) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if err := inject(f.pick(OpOpen, name), OpOpen, name); err != nil {
		return nil, err
	}
	file, err := f.base.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: file, fs: f}, nil
}

// Rename implements FS.
func (f *Faulty) Rename(oldpath, newpath string) error {
	if ft := f.pick(OpRename, oldpath, newpath); ft != nil {
		if ft.Before != nil {
			ft.Before()
		}
		if ft.Err != nil {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: ft.Err}
		}
	}
	return f.base.Rename(oldpath, newpath)
}

// Remove implements FS.
func (f *Faulty) Remove(name string) error {
	if err := inject(f.pick(OpRemove, name), OpRemove, name); err != nil {
		return err
	}
	return f.base.Remove(name)
}

// ReadDir implements FS.
func (f *Faulty) ReadDir(dir string) ([]os.DirEntry, error) {
	if err := inject(f.pick(OpReadDir, dir), OpReadDir, dir); err != nil {
		return nil, err
	}
	return f.base.ReadDir(dir)
}

// Mkdir implements FS.
func (f *Faulty) Mkdir(dir string, perm os.FileMode) error {
	if err := inject(f.pick(OpMkdir, dir), OpMkdir, dir); err != nil {
		return err
	}
	return f.base.Mkdir(dir, perm)
}

// SyncDir implements FS.
func (f *Faulty) SyncDir(dir string) error {
	if err := inject(f.pick(OpSyncDir, dir), OpSyncDir, dir); err != nil {
		return err
	}
	return f.base.SyncDir(dir)
}

type faultyFile struct {
	File
	fs *Faulty
}

func (ff *faultyFile) Write(p []byte) (int, error) {
	ft := ff.fs.pick(OpWrite, ff.Name())
	if ft == nil {
		return ff.File.Write(p)
	}
	if ft.Before != nil {
		ft.Before()
	}
	if ft.Err == nil && ft.Short == 0 {
		return ff.File.Write(p)
	}
	n := 0
	if ft.Short > 0 {
		var err error
		if n, err = ff.File.Write(p[:min(ft.Short, len(p))]); err != nil {
			return n, err
		}
	}
	cause := ft.Err
	if cause == nil {
		return n, io.ErrShortWrite
	}
	return n, &os.PathError{Op: string(OpWrite), Path: ff.Name(), Err: cause}
}

func (ff *faultyFile) Sync() error {
	if err := inject(ff.fs.pick(OpSync, ff.Name()), OpSync, ff.Name()); err != nil {
		return err
	}
	return ff.File.Sync()
}

func (ff *faultyFile) Truncate(size int64) error {
	if err := inject(ff.fs.pick(OpTruncate, ff.Name()), OpTruncate, ff.Name()); err != nil {
		return err
	}
	return ff.File.Truncate(size)
}

func (ff *faultyFile) Close() error {
	if err := inject(ff.fs.pick(OpClose, ff.Name()), OpClose, ff.Name()); err != nil {
		ff.File.Close() // the descriptor is gone either way, as with close(2)
		return err
	}
	return ff.File.Close()
}
