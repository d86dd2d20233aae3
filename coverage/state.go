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

// readState reads and verifies path for the journal journalID. A missing
// file is (nil, "", nil). A file that is not believed (damaged, another
// journal's, an unknown version) is (nil, reason, nil): the caller starts
// afresh and says why. Only an I/O error is an error.
func readState(path, journalID string) (*stateFile, string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", path, err)
	}
	name := filepath.Base(filepath.Dir(path)) + "/" + filepath.Base(path)
	var s stateFile
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return nil, fmt.Sprintf("%s is not a coverage file (%v): its figures were not believed and start afresh", name, err), nil
	}
	if s.Version != stateVersion {
		return nil, fmt.Sprintf("%s has version %d, this build reads %d: its figures were not believed and start afresh", name, s.Version, stateVersion), nil
	}
	if err := fsx.CheckSealedJSON(&s, &s.CRC); err != nil {
		return nil, fmt.Sprintf("%s fails its checksum (%v): its figures were not believed and start afresh", name, err), nil
	}
	if s.JournalID != journalID {
		return nil, fmt.Sprintf("%s belongs to journal %q, this directory is journal %q: its figures were not believed and start afresh", name, s.JournalID, journalID), nil
	}
	if s.Files == nil {
		s.Files = map[string]map[string]string{}
	}
	return &s, "", nil
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
	if reason != "" {
		return nil, errors.New(reason)
	}
	if s == nil {
		return nil, nil
	}
	return &Persisted{UpdatedAt: s.UpdatedAt, Report: s.Report}, nil
}
