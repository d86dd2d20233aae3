package fsx

import (
	"os"
)

// FS is the narrow set of file operations the journal's own files use
// (checkpoint, horizon, identity, archives, quarantine copies, recovery
// notes, the hot directory's creates and removes): what a crash-safe
// whole-file write and a directory update need, and nothing more. Reads
// are not part of it: a fault on the way in is damage, which the
// corruption tests produce with real bytes. The hot log's own writes are
// tidwall/wal's and do not pass through it.
//
// OS is the implementation every journal uses; Faulty wraps one to make
// a chosen call fail, for tests.
type FS interface {
	// OpenFile opens name as os.OpenFile does.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Rename renames oldpath to newpath as os.Rename does.
	Rename(oldpath, newpath string) error
	// Remove removes name as os.Remove does.
	Remove(name string) error
	// ReadDir lists dir as os.ReadDir does.
	ReadDir(dir string) ([]os.DirEntry, error)
	// Mkdir creates dir as os.Mkdir does.
	Mkdir(dir string, perm os.FileMode) error
	// SyncDir fsyncs the directory dir, so that the creates, renames and
	// removes of names inside it are durable.
	SyncDir(dir string) error
}

// File is an open file of an FS: the calls a whole-file write, a
// quarantine cut and the hot log's syncer make.
type File interface {
	Write(p []byte) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
	Name() string
}

// OS is the FS of the operating system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // a nil *os.File must not become a non-nil File
	}
	return f, nil
}
func (osFS) Rename(oldpath, newpath string) error      { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                  { return os.Remove(name) }
func (osFS) ReadDir(dir string) ([]os.DirEntry, error) { return os.ReadDir(dir) }
func (osFS) Mkdir(dir string, perm os.FileMode) error  { return os.Mkdir(dir, perm) }
func (osFS) SyncDir(dir string) error                  { return SyncDir(dir) }

// Or returns fsys, or OS when fsys is nil: the zero value of an option
// that holds an FS means the operating system.
func Or(fsys FS) FS {
	if fsys == nil {
		return OS
	}
	return fsys
}
