package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/agentruntime/statejournal/engine/registry"
	"github.com/agentruntime/statejournal/internal/testproc"
	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
)

// goldenCheckpoint is the version 4 checkpoint of the golden data
// directory (see identity_golden_test.go for how it is regenerated).
var goldenCheckpoint = filepath.Join(goldenDataDirV2, stateDirName, checkpointFileName)

// TestCheckpointGoldenFileIsVersion4AsDocumented reads the golden
// checkpoint field by field as docs/format/checkpoint.md lays it out, and
// encodes what it decoded back to the same bytes: a change of the layout,
// of a meta key or of the entry encoding fails here, so a format change is
// a deliberate act (a new version, a new golden file, the doc updated).
func TestCheckpointGoldenFileIsVersion4AsDocumented(t *testing.T) {
	b, err := os.ReadFile(goldenCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if string(b[:4]) != "SJCK" || le.Uint16(b[4:]) != 4 || le.Uint16(b[6:]) != 0 {
		t.Fatalf("header %q version %d flags %d, want SJCK, 4, 0", b[:4], le.Uint16(b[4:]), le.Uint16(b[6:]))
	}
	m := int(le.Uint32(b[8:]))
	n := int(le.Uint32(b[12+m:]))
	if len(b) != 12+m+4+32*n+4 {
		t.Fatalf("%d bytes for meta %d and %d entries, the doc says 12+M+4+32N+4 = %d", len(b), m, n, 12+m+4+32*n+4)
	}
	if got := crc32cOf(b[:len(b)-4]); got != le.Uint32(b[len(b)-4:]) {
		t.Fatalf("crc32c %08x, the trailer says %08x", got, le.Uint32(b[len(b)-4:]))
	}

	// The meta keys are exactly the documented ones.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b[12:12+m], &keys); err != nil {
		t.Fatal(err)
	}
	documented := documentedCheckpointKeys(t)
	for k := range keys {
		if !documented[k] {
			t.Errorf("the golden meta has key %q, which docs/format/checkpoint.md does not document", k)
		}
	}
	for k := range documented {
		if _, ok := keys[k]; !ok && k != "also" { // also is omitted when no hot record lists other surfaces
			t.Errorf("docs/format/checkpoint.md documents meta key %q, which the golden file does not have", k)
		}
	}
	tags := map[string]bool{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[checkpointMeta]()) {
		tags[strings.Split(f.Tag.Get("json"), ",")[0]] = true
	}
	if !reflect.DeepEqual(tags, documented) {
		t.Errorf("checkpointMeta's keys %v, documented %v", slices.Sorted(mapKeys(tags)), slices.Sorted(mapKeys(documented)))
	}

	meta, rest, err := readCheckpointFile(goldenDataDirV2)
	if err != nil {
		t.Fatal(err)
	}
	if meta.First != 601 || meta.Last != 620 || meta.Durable != 620 || int(meta.Last-meta.First+1) != n || meta.Registry != goldenRegistryV2(t).Digest() {
		t.Fatalf("golden meta: first %d last %d durable %d (%d entries), registry %.12s", meta.First, meta.Last, meta.Durable, n, meta.Registry)
	}
	entries := make([]hotEntry, n)
	prevOff := map[string]uint32{}
	for i := range entries {
		e := readEntry(rest[4+i*entryDiskSize:])
		entries[i] = e
		seq := meta.First + uint64(i)
		if int(e.surface) >= len(meta.Names) || int(e.hint) >= len(meta.Names) ||
			(e.ctype != 255 && int(e.ctype) >= len(record.ChangeTypes())) || int(e.sev) >= len(record.Severities()) || e.multi > 1 {
			t.Fatalf("entry %d: %+v is outside the documented ranges", seq, e)
		}
		seg := ""
		for _, s := range meta.Segments {
			if s.First <= seq {
				seg = s.Name
			}
		}
		if o, ok := prevOff[seg]; ok && e.off <= o {
			t.Fatalf("entry %d: offset %d does not follow %d in segment %s", seq, e.off, o, seg)
		}
		prevOff[seg] = e.off
	}
	again, err := encodeCheckpoint(&meta, entries)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("encoding the golden checkpoint's contents gives %d bytes that differ from its %d: the format changed; bump checkpointVersion, regenerate the golden directory and update docs/format/checkpoint.md", len(again), len(b))
	}
}

// documentedCheckpointKeys returns the meta keys of the table in
// docs/format/checkpoint.md ("| `first`, `last` | ..." names two).
func documentedCheckpointKeys(t *testing.T) map[string]bool {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "format", "checkpoint.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "### The meta object")
	if !ok {
		t.Fatal(`docs/format/checkpoint.md has no "### The meta object" section`)
	}
	section, _, _ := strings.Cut(after, "\n### ")
	keys := map[string]bool{}
	row := regexp.MustCompile("^\\| ((?:`[a-z_]+`(?:, )?)+) \\|")
	key := regexp.MustCompile("`([a-z_]+)`")
	for _, ln := range strings.Split(section, "\n") {
		if m := row.FindStringSubmatch(ln); m != nil {
			for _, k := range key.FindAllStringSubmatch(m[1], -1) {
				keys[k[1]] = true
			}
		}
	}
	return keys
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func crc32cOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// rewriteCheckpoint decodes dir's checkpoint, lets edit change its meta
// and header version, and writes it back with a valid checksum.
func rewriteCheckpoint(t *testing.T, dir string, edit func(meta *checkpointMeta, version *uint16)) {
	t.Helper()
	meta, rest, err := readCheckpointFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.LittleEndian.Uint32(rest))
	entries := make([]hotEntry, n)
	for i := range entries {
		entries[i] = readEntry(rest[4+i*entryDiskSize:])
	}
	version := uint16(checkpointVersion)
	edit(&meta, &version)
	b, err := encodeCheckpoint(&meta, entries)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[4:], version)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32cOf(b[:len(b)-4]))
	if err := os.WriteFile(filepath.Join(dir, stateDirName, checkpointFileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkpointLog returns the reason of the "index checkpoint not used" log
// record in JSON logs, or "".
func checkpointLog(t *testing.T, logs []byte) (reason, msg string) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(logs))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && strings.HasPrefix(rec["msg"].(string), "index checkpoint not used") {
			r, _ := rec["reason"].(string)
			e, _ := rec["err"].(string)
			return r, e
		}
	}
	return "", ""
}

func TestACheckpointThatCannotBeUsedSaysWhyWithItsOwnErrorAndIsRebuilt(t *testing.T) {
	otherRegistry, err := registry.Parse(bytes.Replace(registry.DefaultYAML(), []byte("snapshot_hint: runtime_health\n"), []byte("snapshot_hint: none\n"), 1), "other.yaml", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		opts   []Option
		reason CheckpointReason
		cause  error // what the error matches besides ErrCheckpoint
	}{
		{"a flipped byte in an entry is damage", func(t *testing.T, dir string) {
			p := filepath.Join(dir, stateDirName, checkpointFileName)
			b, _ := os.ReadFile(p)
			b[len(b)-10] ^= 0x40
			os.WriteFile(p, b, 0o644)
		}, nil, CheckpointDamaged, segment.ErrCorrupt},
		{"a cut file is damage", func(t *testing.T, dir string) {
			os.Truncate(filepath.Join(dir, stateDirName, checkpointFileName), 11)
		}, nil, CheckpointDamaged, segment.ErrCorrupt},
		{"version 3 is an unsupported version, not damage", func(t *testing.T, dir string) {
			rewriteCheckpoint(t, dir, func(_ *checkpointMeta, v *uint16) { *v = 3 })
		}, nil, CheckpointUnsupported, segment.ErrUnsupportedVersion},
		{"another journal's checkpoint is foreign", func(t *testing.T, dir string) {
			rewriteCheckpoint(t, dir, func(m *checkpointMeta, _ *uint16) { m.Journal = "3d798819-72e8-411a-96f6-b7b051d08a5c" })
		}, nil, CheckpointForeign, errors.New("")},
		{"a checkpoint that saw other archives is stale", func(t *testing.T, dir string) {
			rewriteCheckpoint(t, dir, func(m *checkpointMeta, _ *uint16) {
				m.Archives = append(m.Archives, archive.FileName(1, 2))
			})
		}, nil, CheckpointStale, errStaleCheckpoint},
		{"a checkpoint taken under another registry is rebuilt", func(t *testing.T, dir string) {},
			[]Option{WithRegistry(otherRegistry)}, CheckpointRegistry, errRegistryChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j := openT(t, dir, WithSegmentSize(64<<10))
			fill(t, j, 700)
			want := all(t, j, Query{})
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, dir)

			if tc.reason != CheckpointRegistry && tc.reason != CheckpointForeign && tc.reason != CheckpointStale {
				// Damage and versions are the file's own: reading it says so.
				_, _, err := readCheckpointFile(dir)
				var ce *CheckpointError
				if !errors.As(err, &ce) || ce.Reason != tc.reason || !errors.Is(err, ErrCheckpoint) || !errors.Is(err, tc.cause) ||
					ce.Path != "state/index.ckpt" {
					t.Fatalf("reading the checkpoint: %v (%#v), want a *CheckpointError for state/index.ckpt, reason %s, matching ErrCheckpoint and %v", err, ce, tc.reason, tc.cause)
				}
				if tc.reason == CheckpointUnsupported && errors.Is(err, segment.ErrCorrupt) {
					t.Fatal("an unknown version is reported as damage")
				}
			}

			var logs testproc.Buffer
			j2, err := Open(dir, append([]Option{WithSegmentSize(64 << 10), WithLogger(slog.New(slog.NewJSONHandler(&logs, nil)))}, tc.opts...)...)
			if err != nil {
				t.Fatalf("open with a checkpoint it cannot use: %v", err)
			}
			defer j2.Close()
			reason, msg := checkpointLog(t, []byte(logs.String()))
			if j2.fromCheckpoint || reason != string(tc.reason) || !strings.Contains(msg, "index checkpoint state/index.ckpt not used") {
				t.Fatalf("fromCheckpoint %v, logged reason %q (%s), want %q and a rebuild; logs:\n%s", j2.fromCheckpoint, reason, msg, tc.reason, []byte(logs.String()))
			}
			if got := all(t, j2, Query{}); !reflect.DeepEqual(got, want) {
				t.Fatalf("the rebuilt index returns %d records, want the %d written", len(got), len(want))
			}
		})
	}
}

// The registry digest the checkpoint carries decides something: the
// per-snapshot figures depend on the snapshot hints the registry gives
// the surfaces a record lists, so a checkpoint taken under another
// registry would answer Stale with the old registry's hints.
func TestACheckpointTakenUnderAnotherRegistryAnswersStaleWithTheNewRegistrysHints(t *testing.T) {
	// In the other registry the health snapshot surface hints the action
	// panel instead of runtime_health.
	other, err := registry.Parse(bytes.Replace(registry.DefaultYAML(), []byte("snapshot_hint: runtime_health\n"), []byte("snapshot_hint: runtime_action_panel\n"), 1), "other.yaml", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	stale := func(j *Journal) []string {
		st, err := j.Stale(0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range st.Snapshots {
			ids = append(ids, s.ID)
		}
		slices.Sort(ids)
		return ids
	}
	dir := t.TempDir()
	j := openT(t, dir)
	// A record that hints no snapshot itself but also lists the health
	// snapshot surface: only the registry says which snapshot that makes
	// stale.
	c := Change{Source: "runtime.leases", Surface: "runtime_leases", ChangeType: "updated", AggregateType: "lease", AggregateID: "l-1",
		SnapshotHint: "none", ChangedSurfaces: []string{"runtime_leases", "runtime_health_snapshot"}}
	if _, err := j.Record(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if got := stale(j); !slices.Equal(got, []string{"runtime_health"}) {
		t.Fatalf("under the default registry Stale names %v, want [runtime_health]", got)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j2 := openT(t, dir, WithRegistry(other))
	if j2.fromCheckpoint {
		t.Fatal("the checkpoint taken under another registry was used")
	}
	if got := stale(j2); !slices.Equal(got, []string{"runtime_action_panel"}) {
		t.Fatalf("under the other registry Stale names %v, want [runtime_action_panel] (the old registry's hint would be runtime_health)", got)
	}
	if err := j2.Close(); err != nil {
		t.Fatal(err)
	}
	// Its own checkpoint, taken under the same registry, is used again.
	j3 := openT(t, dir, WithRegistry(other))
	if !j3.fromCheckpoint {
		t.Fatal("a checkpoint taken under the same registry was not used")
	}
	if got := stale(j3); !slices.Equal(got, []string{"runtime_action_panel"}) {
		t.Fatalf("from its own checkpoint Stale names %v, want [runtime_action_panel]", got)
	}
}
