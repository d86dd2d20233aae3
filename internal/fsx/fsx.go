package fsx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TempSuffix marks files that are being written and are not yet
// authoritative. They are swept at open.
const TempSuffix = ".tmp"

// SyncDir fsyncs the directory dir so that creates, renames and removes of
// names inside it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for fsync: %w", err)
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, serr)
	}
	return cerr
}

// WriteFileAtomic replaces path with data: it writes path+".tmp", fsyncs
// it, renames it over path and fsyncs the directory. A crash at any point
// leaves either the old contents or the new ones under path, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteFileAtomicFS(OS, path, data, perm)
}

// WriteFileAtomicFS is WriteFileAtomic on fsys. On any failure the temp
// file is removed and path keeps its old contents (except after a failed
// directory fsync, when the new contents are in place but possibly not
// durable).
func WriteFileAtomicFS(fsys FS, path string, data []byte, perm os.FileMode) error {
	tmp := path + TempSuffix
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		fsys.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		fsys.Remove(tmp)
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		fsys.Remove(tmp)
		return err
	}
	return CommitTempFS(fsys, tmp, path)
}

// CommitTemp renames a fully written and fsynced temp file to its final
// name and makes the rename durable with a directory fsync.
func CommitTemp(tmp, path string) error { return CommitTempFS(OS, tmp, path) }

// CommitTempFS is CommitTemp on fsys.
func CommitTempFS(fsys FS, tmp, path string) error {
	if err := fsys.Rename(tmp, path); err != nil {
		fsys.Remove(tmp)
		return fmt.Errorf("rename %s: %w", filepath.Base(tmp), err)
	}
	return fsys.SyncDir(filepath.Dir(path))
}

// SweepTemp removes every "*.tmp" file directly inside dir and returns the
// names it removed. It fsyncs the directory when it removed anything.
func SweepTemp(dir string) ([]string, error) { return SweepTempFS(OS, dir) }

// SweepTempFS is SweepTemp on fsys.
func SweepTempFS(fsys FS, dir string) ([]string, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), TempSuffix) {
			continue
		}
		if err := fsys.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, e.Name())
	}
	if len(removed) > 0 {
		return removed, fsys.SyncDir(dir)
	}
	return nil, nil
}

// MkdirAllDurable creates dir (and parents) and fsyncs the parent of every
// directory it created, so the new directory entry survives a crash.
func MkdirAllDurable(dir string, perm os.FileMode) error { return MkdirAllDurableFS(OS, dir, perm) }

// MkdirAllDurableFS is MkdirAllDurable on fsys.
func MkdirAllDurableFS(fsys FS, dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAllDurableFS(fsys, parent, perm); err != nil {
			return err
		}
	}
	if err := fsys.Mkdir(dir, perm); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return fsys.SyncDir(parent)
}
