package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Bounds of a bearer token.
const (
	MinTokenLength = 16
	MaxTokenLength = 4096
)

// ErrBadToken matches every refusal of a token or a token file.
var ErrBadToken = errors.New("server: bad token")

// CheckToken refuses a token that is too short to resist guessing, too
// long for a header, or holds characters a header cannot carry.
func CheckToken(tok string) error {
	if len(tok) < MinTokenLength {
		return fmt.Errorf("%w: it is %d characters, at least %d are needed (e.g. `openssl rand -hex 32`)", ErrBadToken, len(tok), MinTokenLength)
	}
	if len(tok) > MaxTokenLength {
		return fmt.Errorf("%w: it is %d characters, at most %d are allowed", ErrBadToken, len(tok), MaxTokenLength)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: byte %d is %q; a token is printable ASCII without spaces", ErrBadToken, i, c)
		}
	}
	return nil
}

// ReadTokenFile reads a bearer token from path: one line of printable
// ASCII, a trailing newline allowed. The file must be a regular file that
// others cannot read and that neither group nor others can write (chmod
// 600 or 640): a token others can read is no secret, one they can write
// lets them choose it. Reading the token from a file keeps it out of the
// process list, where a command-line flag would show it.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: token file: %w", ErrBadToken, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%w: token file: %w", ErrBadToken, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: token file %s is not a regular file (%s)", ErrBadToken, path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o026 != 0 {
		return "", fmt.Errorf("%w: token file %s has mode %04o: others may read it or group/others may write it; chmod 600 %s", ErrBadToken, path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxTokenLength+3))
	if err != nil {
		return "", fmt.Errorf("%w: token file %s: %w", ErrBadToken, path, err)
	}
	tok := strings.TrimRight(string(b), "\r\n")
	if strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("%w: token file %s holds more than one line; put the token alone on the first line", ErrBadToken, path)
	}
	if err := CheckToken(tok); err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	return tok, nil
}
