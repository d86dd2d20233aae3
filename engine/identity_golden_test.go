package engine

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/segment"
)

// The golden data directory pins the step-5 formats the engine writes:
// hot envelopes v2 (commit time and journal tag), state/identity.json
// (v1), state/horizon.json (v2), state/index.ckpt
// (v4, with journal id, durable sequence and segment fingerprints) and
// archives with v2 footers. A build that can no longer read it fails
// here. Regenerate only for an intended format change:
//
//	go test ./engine/ -run TestGoldenDataDirV2 -update
//
// (the step-4 directory in testdata/step4-dir is frozen: no build writes
// that format any more).
const goldenDataDirV2 = "testdata/step5-dir"

// goldenRegistryV2 is the surface registry the golden step-5 directory
// was written under (the embedded catalog of that release). Its
// checkpoint is believed only under that registry: opened under today's
// catalog, which has surfaces that release did not, the checkpoint is
// rebuilt (registry_changed), as an upgraded journal's is once.
func goldenRegistryV2(t testing.TB) *registry.Registry {
	t.Helper()
	r, err := registry.Load("testdata/step5-dir.surfaces.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files in testdata")
	}
}

func TestGoldenDataDirV2IsReadable(t *testing.T) {
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		os.RemoveAll(goldenDataDirV2)
		j := openT(t, goldenDataDirV2, WithSegmentSize(64<<10), WithRegistry(goldenRegistryV2(t)))
		fill(t, j, 600)
		if _, err := j.Compact(context.Background(), CompactOptions{SealActive: true}); err != nil {
			t.Fatal(err)
		}
		r := DefaultRetention()
		r.MaxRecords = 450
		if _, err := j.Compact(context.Background(), CompactOptions{Retention: &r}); err != nil {
			t.Fatal(err)
		}
		fill(t, j, 20)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"LOCK", "state/last-compaction.json", "state/last-recovery.json"} {
			os.Remove(filepath.Join(goldenDataDirV2, f))
		}
		t.Logf("rewrote %s", goldenDataDirV2)
	}
	dir := t.TempDir()
	copyDir(t, goldenDataDirV2, dir)
	id, err := readIdentity(dir)
	if err != nil || id == nil || id.Upgrade != nil || id.Format != JournalFormatVersion {
		t.Fatalf("golden identity: %+v %v", id, err)
	}
	hz, err := readHorizon(dir, id)
	if err != nil || hz.legacy || hz.value != 286 {
		t.Fatalf("golden horizon: %+v %v", hz, err)
	}
	meta, _, err := readCheckpointFile(dir)
	if err != nil || meta.Journal != id.JournalID || meta.Durable != 620 || len(meta.Segments) != 1 || meta.Segments[0].Fingerprint == 0 {
		t.Fatalf("golden checkpoint: %+v %v", meta, err)
	}
	// Every hot entry carries the identity's journal tag.
	hot, _, err := segment.ListHotSegments(filepath.Join(dir, hotDirName))
	if err != nil || len(hot) != 1 {
		t.Fatalf("golden hot log: %v %v", hot, err)
	}
	tagged := 0
	if _, err := segment.Scan(hot[0], segment.ScanOptions{}, func(he segment.HotEntry) bool {
		if he.Version != segment.EnvelopeVersion2 || he.Tag != segment.JournalTag(id.id) {
			t.Errorf("golden hot entry %d: version %d tag %08x, want version 2 tag %08x", he.Seq, he.Version, he.Tag, segment.JournalTag(id.id))
		}
		tagged++
		return true
	}); err != nil || tagged != 20 {
		t.Fatalf("golden hot log: %d entries, %v", tagged, err)
	}
	before := snapshotFiles(t, dir)
	j := openT(t, dir, ReadOnly(), WithRegistry(goldenRegistryV2(t)))
	if !j.fromCheckpoint {
		t.Fatal("the golden checkpoint was not used")
	}
	var want []uint64
	for s := uint64(286); s <= 620; s++ {
		want = append(want, s)
	}
	if got := sequences(t, j); !slices.Equal(got, want) {
		t.Fatalf("golden directory: %d records, want 286..620", len(got))
	}
	for _, a := range j.view.Load().archives {
		if a.err != nil || a.footer.Version != 2 || a.footer.JournalID != id.id || a.footer.RangeFirst != a.first || a.footer.RangeLast != a.last {
			t.Fatalf("golden archive %s: footer %+v, err %v", a.name, a.footer, a.err)
		}
	}
	j.Close()
	if after := snapshotFiles(t, dir); len(after) != len(before) {
		t.Fatal("a read-only open of the golden directory changed files")
	}
	// Under today's catalog (it has surfaces that release did not) the
	// checkpoint is not believed: the index is rebuilt from the files,
	// and answers the same.
	j = openT(t, dir, ReadOnly())
	if j.fromCheckpoint {
		t.Fatal("the golden checkpoint was believed under another registry")
	}
	if got := sequences(t, j); !slices.Equal(got, want) {
		t.Fatalf("golden directory under today's registry: %d records, want 286..620", len(got))
	}
	j.Close()
	// Sealing is stable: the identity and horizon files are exactly what
	// fsx.SealJSON writes for their contents.
	for name, v := range map[string]any{identityFileName: id} {
		b, _ := os.ReadFile(filepath.Join(dir, stateDirName, name))
		if got := fsx.SealJSON(v, &id.CRC); string(got) != string(b) {
			t.Fatalf("%s: sealing its contents again gives\n%s\nwant\n%s", name, got, b)
		}
	}
}
