package fsx

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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
	// Stale is true when LOCK was free but the data directory itself is
	// locked: a writer still runs whose LOCK file was removed or replaced.
	Stale bool
}

func (e *LockedError) Error() string {
	if e.Stale {
		return fmt.Sprintf("%s: data directory %s is still locked by a writer whose LOCK file was removed or replaced; it stops writing when it notices and then lets go; retry, or stop that writer", ErrLocked.Error(), e.Dir)
	}
	if e.Holder == nil {
		return fmt.Sprintf("%s: data directory %s is locked by another writer (holder unknown)", ErrLocked.Error(), e.Dir)
	}
	return fmt.Sprintf("data directory %s is locked by %s; stop it or send writes through it", e.Dir, e.Holder)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// ErrLockLost is returned by Lock.Check (and, wrapped, by every write of
// a journal that noticed it) when the lock file the writer locked was
// removed or replaced: flock binds a lock to an inode, so a new LOCK file
// at the same path could let a second writer in.
var ErrLockLost = errors.New("lock file LOCK was removed or replaced; another writer may have taken the directory")

// LockLostError says how the lock was lost.
type LockLostError struct {
	Path   string
	Reason string // "removed" or "replaced by another file"
}

func (e *LockLostError) Error() string {
	return fmt.Sprintf("%v (%s %s)", ErrLockLost, e.Path, e.Reason)
}

func (e *LockLostError) Unwrap() error { return ErrLockLost }

// Lock is a held single-writer lock on a data directory. It is two
// flocks: one on the LOCK file, whose inode it remembers (Check compares
// it with the path's inode), and one on the data directory itself, which
// no rm of LOCK can take away. A second writer needs both, so while this
// process holds the directory lock no other writer starts, even after an
// operator deleted LOCK; Release lets go of both.
//
// A Lock is safe for concurrent use.
type Lock struct {
	path string
	dev  uint64
	ino  uint64

	mu   sync.Mutex
	fl   *flock.Flock // guarded by mu; nil once released
	dirf *os.File     // guarded by mu: the data directory, flocked
}

// lockAttempts bounds the retries when LOCK is replaced between its open
// and its flock.
const lockAttempts = 8

// AcquireLock takes the exclusive, non-blocking writer lock of dir and
// records holder in the lock file. It returns a *LockedError (errors.Is
// ErrLocked) when another process holds it. After the flock it checks
// that the locked descriptor is still the file at the path (a LOCK
// removed or replaced between the open and the flock would bind the lock
// to a file nobody else sees) and retries if not.
func AcquireLock(dir string, holder Holder) (*Lock, error) {
	path := filepath.Join(dir, LockFileName)
	for attempt := 0; ; attempt++ {
		fl := flock.New(path)
		ok, err := fl.TryLock()
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !ok {
			h, _ := ReadHolder(dir)
			return nil, &LockedError{Dir: dir, Holder: h}
		}
		fdi, err := fl.Stat() // the locked descriptor
		if err != nil {
			fl.Unlock()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		pdi, err := os.Stat(path)
		if err != nil || !os.SameFile(fdi, pdi) {
			fl.Unlock()
			if attempt+1 < lockAttempts {
				continue // replaced in between: lock the file that is there now
			}
			return nil, fmt.Errorf("lock %s: the lock file keeps being replaced while it is taken", path)
		}
		st, ok := fdi.Sys().(*syscall.Stat_t)
		if !ok {
			fl.Unlock()
			return nil, fmt.Errorf("lock %s: no inode to bind the lock to", path)
		}
		dirf, err := lockDir(dir)
		if err != nil {
			fl.Unlock()
			if errors.Is(err, ErrLocked) {
				return nil, &LockedError{Dir: dir, Stale: true}
			}
			return nil, err
		}
		l := &Lock{fl: fl, path: path, dev: uint64(st.Dev), ino: uint64(st.Ino), dirf: dirf}
		if err := l.SetHolder(holder); err != nil {
			l.Release()
			return nil, err
		}
		return l, nil
	}
}

// lockDir takes a non-blocking exclusive flock on the directory itself.
func lockDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock directory %s: %w", dir, err)
	}
	return f, nil
}

// Check reports whether the lock file at the path is still the file this
// lock holds. It costs one stat. A removed or replaced LOCK is a
// *LockLostError matching ErrLockLost.
func (l *Lock) Check() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	released := l.fl == nil
	l.mu.Unlock()
	if released {
		return nil
	}
	return l.check()
}

func (l *Lock) check() error {
	fi, err := os.Stat(l.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &LockLostError{Path: l.path, Reason: "removed"}
		}
		return fmt.Errorf("check lock %s: %w", l.path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || uint64(st.Dev) != l.dev || uint64(st.Ino) != l.ino {
		return &LockLostError{Path: l.path, Reason: "replaced by another file"}
	}
	return nil
}

// SetHolder rewrites the holder description, e.g. once a server knows the
// address it listens on. The lock stays held throughout. It refuses with
// ErrLockLost when LOCK is no longer the file this lock holds, so it never
// writes into another writer's lock file.
func (l *Lock) SetHolder(h Holder) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fl == nil {
		return fmt.Errorf("write lock holder: %w (the lock was released)", ErrLockLost)
	}
	if err := l.check(); err != nil {
		return err
	}
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
// stale description never names a dead holder — unless the file at the
// path is not the one this lock holds (then it belongs to someone else
// and is left alone).
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fl == nil {
		return nil
	}
	if l.check() == nil {
		_ = os.Truncate(l.path, 0)
	}
	err := l.fl.Unlock()
	l.fl = nil
	if l.dirf != nil {
		l.dirf.Close() // closing the descriptor drops its flock
		l.dirf = nil
	}
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
