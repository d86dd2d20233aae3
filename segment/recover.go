package segment

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
)

// ApplyHotFixups completes an interrupted tidwall/wal truncation as
// tidwall/wal itself would, but durably: every remove and rename is
// followed by an fsync of the directory.
func ApplyHotFixups(dir string, fix []HotFixup) error {
	if len(fix) == 0 {
		return nil
	}
	for _, fx := range fix {
		if fx.Remove != "" {
			if err := os.Remove(fx.Remove); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("complete truncation: %w", err)
			}
		}
		if fx.From != "" {
			if err := os.Rename(fx.From, fx.To); err != nil {
				return fmt.Errorf("complete truncation: %w", err)
			}
		}
	}
	return fsx.SyncDir(dir)
}

// Cut is a record of tail bytes removed from a hot segment at open.
type Cut struct {
	Segment    string    `json:"segment"`
	Offset     int64     `json:"offset"`
	Bytes      int64     `json:"bytes"`
	Cause      Cause     `json:"cause"`
	Sequence   uint64    `json:"first_lost_sequence"`
	Quarantine string    `json:"quarantine"`
	At         time.Time `json:"at"`
	Detail     string    `json:"detail"`
}

// RecoverTail cuts the tail damage a scan of the newest segment returned
// (see TailDamage) into quarantine with QuarantineTail: the bytes from the
// damaged frame to the end of the file, recorded with the damage's cause,
// first lost sequence and detail. It refuses damage that is not tail
// damage: interior damage is never cut implicitly (RepairSegment does it
// on request, with tombstones).
func RecoverTail(fsys fsx.FS, damage *CorruptionError, quarantineDir string) (Cut, error) {
	if damage == nil || !damage.Tail {
		return Cut{}, fmt.Errorf("recover tail: %w; only the tail damage a crash leaves in the newest segment is cut at open", damage)
	}
	return QuarantineTail(fsys, damage.Segment, damage.Offset, damage.Cause, damage.Sequence, damage.Err.Error(), quarantineDir)
}

// QuarantineTail copies bytes [off, EOF) of the segment file into a new
// file in quarantineDir, makes that copy durable, then truncates the
// segment to off and fsyncs it. A crash between the steps leaves either
// the untouched segment (the copy is a harmless duplicate, rewritten at the
// next open) or the truncated one with its copy already durable: the cut
// bytes are never lost. Its writes go through fsys (fsx.OS, or a fault
// injector in tests).
func QuarantineTail(fsys fsx.FS, segPath string, off int64, cause Cause, seq uint64, detail string, quarantineDir string) (Cut, error) {
	cut := Cut{Segment: filepath.Base(segPath), Offset: off, Cause: cause, Sequence: seq, At: time.Now().UTC(), Detail: detail}
	data, err := os.ReadFile(segPath)
	if err != nil {
		return cut, fmt.Errorf("quarantine: read %s: %w", segPath, err)
	}
	if off > int64(len(data)) {
		return cut, fmt.Errorf("quarantine: offset %d past end of %s (%d bytes)", off, segPath, len(data))
	}
	tail := data[off:]
	cut.Bytes = int64(len(tail))
	if err := fsx.MkdirAllDurableFS(fsys, quarantineDir, 0o755); err != nil {
		return cut, fmt.Errorf("quarantine: %w", err)
	}
	name := fmt.Sprintf("%s-off%d-%s-%s.bin", cut.Segment, off, cause, cut.At.Format("20060102T150405.000000000Z"))
	cut.Quarantine = filepath.Join(quarantineDir, name)
	if err := fsx.WriteFileAtomicFS(fsys, cut.Quarantine, tail, 0o600); err != nil {
		return cut, fmt.Errorf("quarantine: %w", err)
	}
	f, err := fsys.OpenFile(segPath, os.O_WRONLY, 0)
	if err != nil {
		return cut, fmt.Errorf("quarantine: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(off); err != nil {
		return cut, fmt.Errorf("quarantine: truncate %s: %w", segPath, err)
	}
	if err := f.Sync(); err != nil {
		return cut, fmt.Errorf("quarantine: fsync %s: %w", segPath, err)
	}
	return cut, nil
}
