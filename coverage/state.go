package coverage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/types"
)

// StateFileName is the figures file inside the data directory's state/.
const StateFileName = "coverage.json"

// stateVersion is the version of state/coverage.json (docs/coverage.md).
const stateVersion = 1

// stateFile is state/coverage.json: the last report (the figures of
// every surface), the fingerprints of the files last seen (so a restart
// can tell what changed while nobody watched), the journal it belongs to
// and a CRC32C over the whole object with crc32c empty.
type stateFile struct {
	Version   int       `json:"version"`
	JournalID string    `json:"journal_id"`
	UpdatedAt time.Time `json:"updated_at"`
	Report    Report    `json:"report"`
	// Files maps surface id -> path (relative to the root when inside
	// it) -> fingerprint hash last seen.
	Files map[string]map[string]string `json:"files"`
	// Incomplete lists the surfaces with more entries than the watcher
	// keeps (their Files are partial).
	Incomplete []string `json:"incomplete,omitempty"`
	CRC        string   `json:"crc32c"`
}

// seal returns the file's bytes with its checksum set (fsx.SealJSON).
func (s *stateFile) seal() []byte { return fsx.SealJSON(s, &s.CRC) }

// notBelieved is why a coverage file is not believed. Its text is for
// people (Report.StateReset, the log); it matches the sentinel of its
// kind (types.ErrForeign, types.ErrIntegrity), or none for a version
// this build does not read.
type notBelieved struct {
	kind error
	text string
}

func (n *notBelieved) Error() string { return n.text }
func (n *notBelieved) Unwrap() error { return n.kind }

// readState reads and verifies path for the journal journalID. A missing
// file is (nil, nil, nil). A file that is not believed (damaged, another
// journal's, an unknown version) is (nil, why, nil): the caller starts
// afresh and says why. Only an I/O error is an error.
func readState(path, journalID string) (*stateFile, *notBelieved, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	name := filepath.Base(filepath.Dir(path)) + "/" + filepath.Base(path)
	reject := func(kind error, format string, a ...any) (*stateFile, *notBelieved, error) {
		return nil, &notBelieved{kind: kind, text: fmt.Sprintf(format, a...) + ": its figures were not believed and start afresh"}, nil
	}
	var s stateFile
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return reject(types.ErrIntegrity, "%s is not a coverage file (%v)", name, err)
	}
	if s.Version != stateVersion {
		return reject(nil, "%s has version %d, this build reads %d", name, s.Version, stateVersion)
	}
	if err := fsx.CheckSealedJSON(&s, &s.CRC); err != nil {
		return reject(types.ErrIntegrity, "%s: %v", name, err)
	}
	if s.JournalID != journalID {
		return reject(types.ErrForeign, "%s belongs to journal %q, this directory is journal %q", name, s.JournalID, journalID)
	}
	if s.Files == nil {
		s.Files = map[string]map[string]string{}
	}
	return &s, nil, nil
}

// writeState replaces path atomically (temp file, fsync, rename,
// directory fsync).
func writeState(path string, s *stateFile) error {
	return fsx.WriteFileAtomic(path, s.seal(), 0o644)
}

// Persisted is what a reader finds in state/coverage.json.
type Persisted struct {
	// UpdatedAt is when the writer last persisted the figures.
	UpdatedAt time.Time `json:"updated_at"`
	Report    Report    `json:"report"`
}

// ReadPersisted reads and verifies <dataDir>/state/coverage.json for the
// journal journalID without changing any file (a reading command beside a
// running server). A missing file is (nil, nil); a file that is not
// believed is an error that names the reason.
func ReadPersisted(dataDir, journalID string) (*Persisted, error) {
	s, reason, err := readState(filepath.Join(dataDir, "state", StateFileName), journalID)
	if err != nil {
		return nil, err
	}
	if reason != nil {
		return nil, reason
	}
	if s == nil {
		return nil, nil
	}
	return &Persisted{UpdatedAt: s.UpdatedAt, Report: s.Report}, nil
}
