package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxSocketPath is the longest socket path every supported OS binds
// (sun_path is 108 bytes on Linux, 104 on the BSDs, including the NUL).
const maxSocketPath = 103

func defaultSocketPath(dir string) string { return filepath.Join(dir, DefaultSocketName) }

// listenSocket binds a Unix socket at path with mode 0600 before anyone
// can connect to it. bind(2) creates the file with 0777 &^ umask, so the
// socket is bound inside a fresh 0700 directory (nobody else can reach it
// there), chmod'ed to 0600 and only then renamed into place. Changing the
// process umask instead would race with every other goroutine creating
// files. A socket file already at path is removed only when nothing
// answers on it (a crashed server's leftover); a live one is
// ErrSocketInUse, and a file that is not a socket is refused.
func listenSocket(path string) (*net.UnixListener, fs.FileInfo, error) {
	if len(path) > maxSocketPath {
		return nil, nil, fmt.Errorf("server: socket path %s is %d bytes, the OS allows at most %d; pass a shorter --socket path", path, len(path), maxSocketPath)
	}
	if err := clearStaleSocket(path); err != nil {
		return nil, nil, err
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".s")
	if err != nil {
		return nil, nil, fmt.Errorf("server: create socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	if len(tmp) > maxSocketPath {
		// The private directory makes the path longer; bind the short
		// name directly under a restrictive umask is not an option (it is
		// process-wide), so ask for a shorter directory instead.
		return nil, nil, fmt.Errorf("server: socket path %s leaves no room for its private bind directory (%d bytes, the OS allows %d); pass a shorter --socket path", path, len(tmp), maxSocketPath)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("server: listen on socket %s: %w", path, err)
	}
	// The listener's own unlink-on-close would target the temporary name;
	// Close removes the final one.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		return nil, nil, fmt.Errorf("server: chmod socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		return nil, nil, fmt.Errorf("server: move socket into place at %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		l.Close()
		return nil, nil, fmt.Errorf("server: stat socket: %w", err)
	}
	return l, fi, nil
}

// clearStaleSocket removes a socket file at path that nothing answers on.
func clearStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("server: inspect socket path: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("server: %s exists and is not a socket; remove it or pass another --socket path", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: %s (is another `journalctl serve` running?)", ErrSocketInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("server: probe existing socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("server: remove stale socket: %w", err)
	}
	return nil
}

// removeSocket removes the socket file at path if it is still the one
// this server bound (another process may have replaced it since).
func removeSocket(path string, ours fs.FileInfo) error {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket || !os.SameFile(fi, ours) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("server: remove socket: %w", err)
	}
	return nil
}
