package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Every single-bit flip anywhere in a real segment file is found, and none
// is ever classified as tail damage (which open would cut as a crash
// artefact, losing acknowledged records).
func TestEveryBitFlipIsInteriorDamageNeverATornTail(t *testing.T) {
	var file []byte
	for i := 0; i < 6; i++ {
		payload := []byte(fmt.Sprintf(`{"schema_version":"runtime-state-change-v1","event_id":"e-%d","surface":"runtime_work_session","aggregate_id":"ws-%d","pad":"%0*d"}`, i, i, 40+i*37, i))
		file = AppendWALEntry(file, AppendEnvelopeTime(nil, uint64(100+i), byte(i%2), 0, 0, payload))
	}
	path := filepath.Join(t.TempDir(), HotSegmentName(100))
	seg := HotSegment{Path: path, FirstSeq: 100}
	for off := range file {
		for bit := 0; bit < 8; bit++ {
			b := append([]byte(nil), file...)
			b[off] ^= 1 << bit
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Scan(seg, ScanOptions{Newest: true}, nil)
			var p *CorruptionError
			if !errors.As(err, &p) {
				t.Fatalf("flip of bit %d at %d went unnoticed (scan error %v)", bit, off, err)
			}
			if _, tail := TailDamage(err); tail || p.Tail {
				t.Fatalf("flip of bit %d at %d was classified as %s tail damage", bit, off, p.Cause)
			}
		}
	}
}
