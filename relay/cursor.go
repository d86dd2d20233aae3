package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/types"
)

// File names under the data directory's state/.
const (
	stateDir = "state"
	// CursorFileName is the relay cursor: how far the journal is shipped.
	CursorFileName = "relay.json"
	// DroppedFileName records what retention removed before it was shipped.
	DroppedFileName = "relay-dropped.json"
	lockFileName    = "relay.lock"
	cursorVersion   = 1
)

// Cursor is the relay's durable position, persisted in state/relay.json.
// Every record of the journal up to Sequence is in the stream, exactly
// once; StreamSequence is the stream sequence of record Sequence's
// message (0 when unknown), where a restart looks for records that were
// stored but not yet counted. It names the journal it belongs to and the
// stream and host it ships to, and carries a CRC32C: a file of another
// journal, or a damaged one, is refused, never believed.
type Cursor struct {
	Version        int       `json:"version"`
	JournalID      string    `json:"journal_id"`
	Host           string    `json:"host"`
	Stream         string    `json:"stream"`
	StreamCreated  time.Time `json:"stream_created"`
	Sequence       uint64    `json:"sequence"`
	StreamSequence uint64    `json:"stream_sequence"`
	UpdatedAt      time.Time `json:"updated_at"`
	CRC            string    `json:"crc32c"`
}

// CursorError says why a relay state file is not believed.
type CursorError struct {
	File    string // relative to the data directory
	Problem string
	Err     error // types.ErrIntegrity, types.ErrForeign or ErrUnsupportedVersion
}

func (e *CursorError) Error() string { return e.File + ": " + e.Problem }

// Unwrap returns the kind of problem.
func (e *CursorError) Unwrap() error { return e.Err }

// ErrUnsupportedVersion marks a relay state file of a version this build
// does not read.
var ErrUnsupportedVersion = errors.New("unsupported relay file version")

// seal and checkSeal are the journal's one sealed form of a small state
// file (fsx.SealJSON): the relay's files are checksummed as identity.json
// and horizon.json are.
func seal(v any, crc *string) []byte { return fsx.SealJSON(v, crc) }

func checkSeal(v any, crc *string) error { return fsx.CheckSealedJSON(v, crc) }

// decodeStrict decodes one JSON object, refusing unknown fields and
// trailing bytes.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("bytes after the JSON object")
	}
	return nil
}

// ReadCursor reads and verifies dir's relay cursor for the journal
// journalID. It returns ok false when there is none. A damaged file is a
// *CursorError matching types.ErrIntegrity, another journal's matches
// types.ErrForeign: neither is used, and the relay does not start until
// the operator restores or removes it.
func ReadCursor(dir, journalID string) (c Cursor, ok bool, err error) {
	rel := stateDir + "/" + CursorFileName
	b, err := os.ReadFile(filepath.Join(dir, stateDir, CursorFileName))
	if errors.Is(err, os.ErrNotExist) {
		return Cursor{}, false, nil
	}
	if err != nil {
		return Cursor{}, false, &CursorError{File: rel, Problem: "cannot be read: " + err.Error(), Err: types.ErrIntegrity}
	}
	bad := func(format string, a ...any) error {
		return &CursorError{File: rel, Err: types.ErrIntegrity, Problem: fmt.Sprintf(format, a...) +
			"; it decides which records are shipped and which retention may remove, so it is not used: restore it, or remove it to let the relay find its place from the stream's last message for this host"}
	}
	if err := decodeStrict(b, &c); err != nil {
		return Cursor{}, false, bad("is not a relay cursor: %v", err)
	}
	if c.Version != cursorVersion {
		return Cursor{}, false, &CursorError{File: rel, Err: ErrUnsupportedVersion, Problem: fmt.Sprintf("relay cursor version %d, this build reads %d", c.Version, cursorVersion)}
	}
	if err := checkSeal(&c, &c.CRC); err != nil {
		return Cursor{}, false, bad("%v", err)
	}
	if c.JournalID != journalID {
		return Cursor{}, false, &CursorError{File: rel, Err: types.ErrForeign, Problem: fmt.Sprintf(
			"written for journal %s, this directory is journal %s: it is not used; remove it to relay this journal from the stream's last message for this host", c.JournalID, journalID)}
	}
	return c, true, nil
}

// writeCursor persists c atomically (temp file, fsync, rename, directory
// fsync).
func writeCursor(dir string, c Cursor) error {
	c.Version = cursorVersion
	c.UpdatedAt = time.Now().UTC()
	return fsx.WriteFileAtomic(filepath.Join(dir, stateDir, CursorFileName), seal(&c, &c.CRC), 0o644)
}

// Dropped is what retention removed before the relay shipped it,
// persisted in state/relay-dropped.json by the process that compacts
// (the server), so status tells it after a restart and in another
// process.
type Dropped struct {
	Version     int       `json:"version"`
	JournalID   string    `json:"journal_id"`
	Records     uint64    `json:"records"` // total unshipped records removed
	LastArchive string    `json:"last_archive"`
	LastFirst   uint64    `json:"last_first_sequence"`
	LastLast    uint64    `json:"last_last_sequence"`
	LastAt      time.Time `json:"last_at"`
	CRC         string    `json:"crc32c"`
}

// ReadDropped reads and verifies state/relay-dropped.json; ok is false
// when retention never removed unshipped records.
func ReadDropped(dir, journalID string) (d Dropped, ok bool, err error) {
	rel := stateDir + "/" + DroppedFileName
	b, err := os.ReadFile(filepath.Join(dir, stateDir, DroppedFileName))
	if errors.Is(err, os.ErrNotExist) {
		return Dropped{}, false, nil
	}
	if err != nil {
		return Dropped{}, false, &CursorError{File: rel, Problem: "cannot be read: " + err.Error(), Err: types.ErrIntegrity}
	}
	if err := decodeStrict(b, &d); err != nil {
		return Dropped{}, false, &CursorError{File: rel, Err: types.ErrIntegrity, Problem: "is not a relay drop record: " + err.Error()}
	}
	if d.Version != cursorVersion {
		return Dropped{}, false, &CursorError{File: rel, Err: ErrUnsupportedVersion, Problem: fmt.Sprintf("version %d, this build reads %d", d.Version, cursorVersion)}
	}
	if err := checkSeal(&d, &d.CRC); err != nil {
		return Dropped{}, false, &CursorError{File: rel, Err: types.ErrIntegrity, Problem: err.Error()}
	}
	if d.JournalID != journalID {
		return Dropped{}, false, &CursorError{File: rel, Err: types.ErrForeign, Problem: fmt.Sprintf("written for journal %s, this directory is journal %s", d.JournalID, journalID)}
	}
	return d, true, nil
}

func writeDropped(dir string, d Dropped) error {
	d.Version = cursorVersion
	return fsx.WriteFileAtomic(filepath.Join(dir, stateDir, DroppedFileName), seal(&d, &d.CRC), 0o644)
}

// lockRelay takes the relay's own lock (state/relay.lock), so two relays
// never ship one journal: a second gets ErrRelayRunning.
func lockRelay(dir string) (*flock.Flock, error) {
	l := flock.New(filepath.Join(dir, stateDir, lockFileName))
	ok, err := l.TryLock()
	if err != nil {
		return nil, fmt.Errorf("relay lock %s: %w", l.Path(), err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s is held by another relay of this journal", types.ErrRelayConflict, l.Path())
	}
	return l, nil
}
