package engine

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
	"github.com/agentruntime/statejournal/types"
)

// Errors of the journal's integrity checks, re-exported from types.
var (
	ErrIntegrity = types.ErrIntegrity
	ErrForeign   = types.ErrForeign
	ErrHole      = types.ErrHole
)

// JournalFormatVersion is the data directory's format: 1 is a directory
// from before journal identities (step 4), 2 one with state/identity.json.
const JournalFormatVersion = 2

const (
	identityFileName = "identity.json"
	identityVersion  = 1
)

// journalIdentity is state/identity.json: written once, when a directory is
// first opened for writing, and never changed. Every checkpoint, horizon
// file and archive footer names its JournalID; a file naming another is
// refused (or, for the checkpoint, rebuilt).
type journalIdentity struct {
	Version   int       `json:"version"`        // of this file's layout, identityVersion
	JournalID string    `json:"journal_id"`     // a random UUID
	Format    int       `json:"format_version"` // JournalFormatVersion when written
	CreatedAt time.Time `json:"created_at"`
	// Upgrade is set when the identity was written into a directory that
	// already held data from before identities.
	Upgrade *identityUpgrade `json:"upgrade,omitempty"`
	CRC     string           `json:"crc32c"` // over this JSON with crc32c ""

	id [archive.JournalIDSize]byte // JournalID parsed
}

// identityUpgrade records what a directory held when it got its identity:
// the version 1 archives (no journal id in their footer) by name and
// footer checksum, the version 1 horizon, and where the version 1 hot
// entries end. Only those files (and entries) are
// accepted without an identity afterwards; a version 1 archive or horizon
// that appears later is refused.
type identityUpgrade struct {
	At             time.Time       `json:"at"`
	LegacyArchives []legacyArchive `json:"legacy_archives"`
	LegacyHorizon  uint64          `json:"legacy_horizon,omitempty"`
	// LegacyHotNext is the sequence the hot log had reached when the
	// identity was written: version 1 hot entries (no journal tag) are
	// believed only below it (hottag.go).
	LegacyHotNext uint64 `json:"legacy_hot_next,omitempty"`
}

type legacyArchive struct {
	Name     string `json:"name"`
	Checksum uint32 `json:"footer_crc32c"`
}

// IntegrityError names a journal file that open, validate or a read
// refused, and why. It matches ErrIntegrity, ErrForeign or ErrHole.
type IntegrityError struct {
	File    string // relative to the data directory, e.g. "state/horizon.json"
	Problem string // what is wrong and what to do
	Err     error  // the kind: ErrIntegrity, ErrForeign, ErrHole, segment.ErrUnsupportedVersion
	// Cause is the error that made the check fail (an I/O error, a
	// decode error), when there is one; Problem already quotes it.
	Cause error
}

func (e *IntegrityError) Error() string { return e.File + ": " + e.Problem }

// Unwrap returns the error's kind and its cause, so that errors.Is
// matches both (ErrIntegrity and, say, syscall.EIO).
func (e *IntegrityError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// causeOf returns the first error among a message's arguments: the
// cause an *IntegrityError built from that message keeps.
func causeOf(args []any) error {
	for _, a := range args {
		if err, ok := a.(error); ok {
			return err
		}
	}
	return nil
}

// HoleError is a run of sequences between the horizon and the head that
// no file holds. Every read that crosses it returns it.
type HoleError struct {
	First, Last uint64
	After       string // the file before the hole ("" at the start)
	Before      string // the file after it
	Cause       string // why the sequences are missing, as far as is known
}

func (e *HoleError) Error() string {
	where := ""
	switch {
	case e.After != "" && e.Before != "":
		where = fmt.Sprintf(" (between %s and %s)", e.After, e.Before)
	case e.Before != "":
		where = fmt.Sprintf(" (before %s)", e.Before)
	case e.After != "":
		where = fmt.Sprintf(" (after %s)", e.After)
	}
	return fmt.Sprintf("sequences %d..%d are missing: no archive or hot segment holds them%s; %s", e.First, e.Last, where, e.Cause)
}

// Unwrap returns ErrHole.
func (e *HoleError) Unwrap() error { return types.ErrHole }

func relPath(parts ...string) string { return filepath.ToSlash(filepath.Join(parts...)) }

// readIdentity reads state/identity.json. It returns nil, nil when the
// file does not exist, and an *IntegrityError when it is damaged.
func readIdentity(dir string) (*journalIdentity, error) {
	rel := relPath(stateDirName, identityFileName)
	b, err := os.ReadFile(filepath.Join(dir, stateDirName, identityFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &IntegrityError{File: rel, Problem: "cannot be read: " + err.Error(), Err: types.ErrIntegrity}
	}
	return parseIdentity(b)
}

// parseIdentity decodes and verifies the bytes of an identity file.
func parseIdentity(b []byte) (*journalIdentity, error) {
	rel := relPath(stateDirName, identityFileName)
	bad := func(format string, a ...any) error {
		return &IntegrityError{File: rel, Problem: fmt.Sprintf(format, a...) +
			"; the journal identity decides which archives, horizon and checkpoint belong here, so nothing is opened: restore the file from a backup", Err: types.ErrIntegrity, Cause: causeOf(a)}
	}
	var id journalIdentity
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if len(b) == 0 {
		return nil, bad("is empty")
	}
	if err := d.Decode(&id); err != nil {
		return nil, bad("is not a journal identity: %v", err)
	}
	if id.Version != identityVersion {
		return nil, &IntegrityError{File: rel, Problem: fmt.Sprintf("identity file version %d, this build reads version %d", id.Version, identityVersion), Err: segment.ErrUnsupportedVersion}
	}
	if err := fsx.CheckSealedJSON(&id, &id.CRC); err != nil {
		return nil, bad("%v", err)
	}
	u, err := uuid.Parse(id.JournalID)
	if err != nil {
		return nil, bad("journal_id %q is not a UUID", id.JournalID)
	}
	if id.Format < 1 || id.Format > JournalFormatVersion {
		return nil, &IntegrityError{File: rel, Problem: fmt.Sprintf("journal format version %d, this build reads 1..%d", id.Format, JournalFormatVersion), Err: segment.ErrUnsupportedVersion}
	}
	id.id = u
	return &id, nil
}

// newIdentity makes a fresh identity; up is non-nil for an upgrade.
func newIdentity(up *identityUpgrade) *journalIdentity {
	u := uuid.New()
	return &journalIdentity{Version: identityVersion, JournalID: u.String(), Format: JournalFormatVersion, CreatedAt: time.Now().UTC(), Upgrade: up, id: u}
}

// writeIdentity writes the identity atomically (temp file, fsync, rename,
// directory fsync). It is called once per directory.
func writeIdentity(fsys fsx.FS, dir string, id *journalIdentity) error {
	b := fsx.SealJSON(id, &id.CRC)
	if err := fsx.WriteFileAtomicFS(fsys, filepath.Join(dir, stateDirName, identityFileName), b, 0o644); err != nil {
		return fmt.Errorf("write journal identity: %w", err)
	}
	return nil
}

// acceptsLegacyArchive reports whether a version 1 archive (no journal id)
// may be read: in a directory without an identity (before its upgrade),
// or when the upgrade recorded it by name and footer checksum.
func (id *journalIdentity) acceptsLegacyArchive(name string, checksum uint32) bool {
	if id == nil {
		return true
	}
	return id.Upgrade != nil && slices.Contains(id.Upgrade.LegacyArchives, legacyArchive{Name: name, Checksum: checksum})
}

// idString is the journal id for messages, "none" without an identity.
func (id *journalIdentity) idString() string {
	if id == nil {
		return "none"
	}
	return id.JournalID
}

func journalIDString(b [archive.JournalIDSize]byte) string {
	if b == ([archive.JournalIDSize]byte{}) {
		return "none"
	}
	u, err := uuid.FromBytes(b[:])
	if err != nil {
		return hex.EncodeToString(b[:])
	}
	return u.String()
}

// missingHotLog checks a directory whose hot/ holds no segment: a writer
// would start a new hot log at sequence 1, reusing sequences that the
// archives or the horizon already account for. It returns an error when
// they account for any, naming the sequence the hot log must start at.
func missingHotLog(dir string, id *journalIdentity) error {
	next := uint64(1)
	ents, err := os.ReadDir(filepath.Join(dir, archiveDirName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		if _, last, ok := archive.ParseFileName(e.Name()); ok {
			next = max(next, last+1)
		}
	}
	hz, err := readHorizon(dir, id)
	if err != nil {
		return err
	}
	next = max(next, hz.value)
	if next == 1 {
		return nil
	}
	return &IntegrityError{File: hotDirName + "/", Err: types.ErrHole, Problem: fmt.Sprintf(
		"holds no segment, but the archives and the horizon account for sequences up to %d: the hot log was removed, and a new one would reuse sequences from 1; "+
			"restore hot/ from a backup, or run state-journal-validate --repair to start the hot log at %d (records the removed hot log held after %d are lost and cannot be counted)",
		next-1, next, next-1)}
}

// JournalID is a journal's id as archive footers store it (the 16 bytes
// of the UUID in state/identity.json).
type JournalID = [archive.JournalIDSize]byte

// InitDir gives a new data directory its journal identity without opening
// the journal and returns the journal id; for a directory that has one it
// returns it. Tools that build a data directory's files directly (the
// query benchmark writes archives with archive.Write) stamp them
// with this id, so Open accepts them. A directory that already holds
// archives or hot segments but no identity is refused: open it for
// writing once, which upgrades it.
func InitDir(dir string) (JournalID, error) {
	id, err := readIdentity(dir)
	if err != nil {
		return JournalID{}, err
	}
	if id != nil {
		return id.id, nil
	}
	for _, sub := range []string{archiveDirName, hotDirName} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return JournalID{}, err
		}
		if len(ents) > 0 {
			return JournalID{}, fmt.Errorf("init %s: %s/ already holds files but the directory has no identity: open it for writing once to upgrade it", dir, sub)
		}
	}
	if err := fsx.MkdirAllDurable(filepath.Join(dir, stateDirName), 0o755); err != nil {
		return JournalID{}, err
	}
	id = newIdentity(nil)
	if err := writeIdentity(fsx.OS, dir, id); err != nil {
		return JournalID{}, err
	}
	return id.id, nil
}

// strangerIdentity reports the identity file as the foreign one when
// every version 2 archive names one and the same other journal: then the
// identity was replaced, not the archives (refusing each archive would
// tell the operator to move every archive away).
func strangerIdentity(as []*archiveSeg, id *journalIdentity) error {
	if id == nil {
		return nil
	}
	var other [archive.JournalIDSize]byte
	n := 0
	for _, a := range as {
		if a.err != nil && !a.refused || a.footer.Version == archive.FormatV1 || a.footer.Version == 0 {
			continue
		}
		if a.footer.JournalID == id.id || (n > 0 && a.footer.JournalID != other) {
			return nil
		}
		other = a.footer.JournalID
		n++
	}
	if n == 0 {
		return nil
	}
	return &IntegrityError{File: relPath(stateDirName, identityFileName), Err: types.ErrForeign, Problem: fmt.Sprintf(
		"names journal %s, but every archive (%d) names journal %s: the identity file was replaced; restore it, or run state-journal-validate --repair to rewrite it from the archives (nothing was deleted)",
		id.JournalID, n, journalIDString(other))}
}
