package fsx

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/agentruntime/statejournal/types"
	"github.com/gofrs/flock"
)

// LockFileName is the name of the single-writer lock inside a data
// directory.
const LockFileName = "LOCK"

// ErrLocked is returned by AcquireLock when another process holds the lock.
// The returned error is a *LockedError naming the holder.
// It is the shared types.ErrLocked so that layers above match it without
// importing this package.
var ErrLocked = types.ErrLocked

// Holder describes the process that holds a data directory's lock. It is
// written into the lock file after the lock is taken so that others can
// name the holder in their errors.
type Holder struct {
	PID       int       `json:"pid"`
	Hostname  string    `json:"hostname,omitempty"`
	Address   string    `json:"address,omitempty"`
	Socket    string    `json:"socket,omitempty"`
	Command   string    `json:"command,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

func (h Holder) String() string {
	s := fmt.Sprintf("pid %d", h.PID)
	if h.Hostname != "" {
		s += " on " + h.Hostname
	}
	if h.Command != "" {
		s += " (" + h.Command + ")"
	}
	if h.Address != "" {
		s += ", listening on " + h.Address
	}
	return s
}

// LockedError is returned when the lock is held elsewhere.
type LockedError struct {
	Dir    string
	Holder *Holder // nil when the holder did not (yet) say who it is
}

func (e *LockedError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("%s: data directory %s is locked by another writer (holder unknown)", ErrLocked.Error(), e.Dir)
	}
	return fmt.Sprintf("data directory %s is locked by %s; stop it or send writes through it", e.Dir, e.Holder)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is a held single-writer lock on a data directory.
type Lock struct {
	fl   *flock.Flock
	path string
}

// AcquireLock takes the exclusive, non-blocking writer lock of dir and
// records holder in the lock file. It returns a *LockedError (errors.Is
// ErrLocked) when another process holds it.
func AcquireLock(dir string, holder Holder) (*Lock, error) {
	path := filepath.Join(dir, LockFileName)
	fl := flock.New(path)
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		h, _ := ReadHolder(dir)
		return nil, &LockedError{Dir: dir, Holder: h}
	}
	l := &Lock{fl: fl, path: path}
	if err := l.SetHolder(holder); err != nil {
		fl.Unlock()
		return nil, err
	}
	return l, nil
}

// SetHolder rewrites the holder description, e.g. once a server knows the
// address it listens on. The lock stays held throughout.
func (l *Lock) SetHolder(h Holder) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	// The lock file's inode must stay the same (flock is per inode), so it
	// is rewritten in place rather than replaced.
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write lock holder: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("write lock holder: %w", werr)
	}
	return cerr
}

// Release drops the lock. The lock file stays; its content is cleared so a
// stale description never names a dead holder.
func (l *Lock) Release() error {
	if l == nil || l.fl == nil {
		return nil
	}
	_ = os.Truncate(l.path, 0)
	err := l.fl.Unlock()
	l.fl = nil
	return err
}

// ReadHolder returns the holder recorded in dir's lock file, or nil when
// there is none. It never takes the lock.
func ReadHolder(dir string) (*Holder, error) {
	b, err := os.ReadFile(filepath.Join(dir, LockFileName))
	if err != nil || len(b) == 0 {
		return nil, err
	}
	var h Holder
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("parse lock holder: %w", err)
	}
	return &h, nil
}

// HeldBy reports whether a live process holds dir's lock, and who. It
// never takes the lock (a probe could make a starting writer fail), so it
// trusts the holder description and checks that its process is alive; a
// crashed holder leaves a description whose pid is gone.
func HeldBy(dir string) (bool, *Holder) {
	h, err := ReadHolder(dir)
	if err != nil || h == nil || h.PID <= 0 {
		return false, nil
	}
	if h.PID == os.Getpid() {
		return true, h
	}
	if err := syscall.Kill(h.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false, h
	}
	return true, h
}

// MarshalJSON writes started_at in types.TimeLayout, the one time format
// of the journal's JSON.
func (h Holder) MarshalJSON() ([]byte, error) {
	type plain Holder
	return json.Marshal(struct {
		plain
		StartedAt string `json:"started_at"`
	}{plain(h), types.FormatTime(h.StartedAt)})
}
