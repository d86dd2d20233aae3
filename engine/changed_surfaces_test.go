package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentruntime/statejournal/types"
)

// TestChangedSurfacesPassTheSamePolicyAsSurface lists surfaces a record's
// source could not write directly: each is refused like the surface
// itself would be, naming changed_surfaces[i], and nothing is written.
func TestChangedSurfacesPassTheSamePolicyAsSurface(t *testing.T) {
	j := openT(t, t.TempDir())
	base := func(listed ...string) Change {
		c := heartbeat("ws-1")
		c.ChangedSurfaces = append([]string{"runtime_work_session"}, listed...)
		return c
	}
	cases := []struct {
		name  string
		c     Change
		kind  error
		field string
	}{
		{"an authority-adjacent surface listed by a foreign source is refused", base("runtime_approvals"), types.ErrPolicy, "changed_surfaces[1]"},
		{"a disabled surface listed is refused", base("runtime_action_timeline"), types.ErrPolicy, "changed_surfaces[1]"},
		{"an unknown surface listed is refused with a did-you-mean", base("runtime_aprovals"), types.ErrUnknownSurface, "changed_surfaces[1]"},
		{"a change type the listed surface does not accept is refused", base("runtime_tool_invocations"), types.ErrInvalid, "changed_surfaces[1]"},
		{"a surface listed twice is refused", base("runtime_agent_registry", "runtime_agent_registry"), types.ErrInvalid, "changed_surfaces[2]"},
		{"a list without the record's surface is refused", Change{Source: "runtime.work_session", Surface: "runtime_work_session", ChangeType: "heartbeat",
			AggregateType: "work_session", AggregateID: "ws-1", ChangedSurfaces: []string{"runtime_agent_registry"}}, types.ErrInvalid, "changed_surfaces"},
		{"mutates_authority_state is refused on a listed surface that is not authority-adjacent", Change{Source: "runtime.leases", Surface: "runtime_leases",
			ChangeType: "updated", AggregateType: "lease", AggregateID: "l-1", MutatesAuthorityState: true,
			ChangedSurfaces: []string{"runtime_leases", "runtime_notifications"}}, types.ErrPolicy, "changed_surfaces[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := j.Record(context.Background(), tc.c)
			var fe *types.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, tc.kind) || fe.Field != tc.field {
				t.Fatalf("got %v (%#v), want %v naming %s", err, fe, tc.kind, tc.field)
			}
			if tc.kind == types.ErrUnknownSurface && fe.Suggestion != "runtime_approvals" {
				t.Errorf("no did-you-mean: %+v", fe)
			}
		})
	}
	if h := j.Head(); h != 0 {
		t.Fatalf("refused records were written: head %d", h)
	}
	// The owner source of an adjacent surface may list it.
	c := Change{Source: "runtime.approvals", Surface: "runtime_approvals", ChangeType: "updated", AggregateType: "approval", AggregateID: "a-1",
		ChangedSurfaces: []string{"runtime_approvals", "runtime_notifications"}}
	if _, err := j.Record(context.Background(), c); err != nil {
		t.Fatalf("an owner source listing a surface it may write: %v", err)
	}
}

// multiChange is a record of runtime_tool_invocations (snapshot hint
// none) that also lists runtime_notifications (hint runtime_action_panel).
func multiChange(id string) Change {
	return Change{Source: "runtime.tools", Surface: "runtime_tool_invocations", ChangeType: "updated", AggregateType: "tool_call", AggregateID: id,
		ChangedSurfaces: []string{"runtime_tool_invocations", "runtime_notifications"}}
}

// TestRecordIsFoundUnderEveryListedSurface writes records that list a
// second surface and checks that queries by that surface, Stale and the
// per-surface figures see them: in the hot log, after a compaction into
// an archive, and after reopening with and without the checkpoint.
func TestRecordIsFoundUnderEveryListedSurface(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64 // sequences a query by runtime_notifications must return
	for i := range 40 {
		var c Change
		switch i % 4 {
		case 0:
			c = multiChange("t-" + string(rune('a'+i%26)))
		case 1:
			c = Change{Source: "runtime.notifications", Surface: "runtime_notifications", ChangeType: "created", AggregateType: "notification", AggregateID: "n-1"}
		default:
			c = heartbeat("ws-1")
		}
		rc, err := j.Record(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if i%4 <= 1 {
			want = append(want, rc.Sequence)
		}
	}
	tail, err := j.Record(ctx, multiChange("t-last"))
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, tail.Sequence)
	// Stale after the last single-surface record of runtime_notifications:
	// only the multi-surface record follows it.
	since := want[len(want)-2]

	check := func(t *testing.T, j *Journal, stage string) {
		t.Helper()
		for _, q := range []Query{
			{Surfaces: []string{"runtime_notifications"}, Limit: -1},
			{Surfaces: []string{"runtime_notifications", "runtime_tool_invocations"}, Limit: -1},
			{Surfaces: []string{"runtime_notifications"}, Limit: -1, NewestFirst: true},
		} {
			res, err := j.Query(ctx, q)
			if err != nil {
				t.Fatalf("%s: query: %v", stage, err)
			}
			var got []uint64
			for _, c := range res.Changes {
				got = append(got, c.Sequence)
			}
			if q.NewestFirst {
				slices.Reverse(got)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s: query %v got %v, want %v", stage, q.Surfaces, got, want)
			}
		}
		st, err := j.Stale(since)
		if err != nil {
			t.Fatalf("%s: stale: %v", stage, err)
		}
		if !slices.ContainsFunc(st.Snapshots, func(s StaleItem) bool { return s.ID == "runtime_action_panel" && s.LastSequence == tail.Sequence }) {
			t.Errorf("%s: Stale(%d) snapshots %+v miss runtime_action_panel at %d", stage, since, st.Snapshots, tail.Sequence)
		}
		if !slices.ContainsFunc(st.Surfaces, func(s StaleItem) bool { return s.ID == "runtime_notifications" && s.LastSequence == tail.Sequence }) {
			t.Errorf("%s: Stale(%d) surfaces %+v miss runtime_notifications at %d", stage, since, st.Surfaces, tail.Sequence)
		}
		for _, s := range j.Status().Surfaces {
			if s.ID == "runtime_notifications" && (s.Records != uint64(len(want)) || s.LastSequence != tail.Sequence) {
				t.Errorf("%s: status of runtime_notifications %+v, want %d records, last %d", stage, s, len(want), tail.Sequence)
			}
		}
	}
	check(t, j, "hot log")
	if _, err := j.Compact(ctx, CompactOptions{SealActive: true}); err != nil {
		t.Fatal(err)
	}
	if len(j.view.Load().archives) == 0 {
		t.Fatal("nothing was archived")
	}
	check(t, j, "after compaction")
	// One more in the hot log: a query now reads archive and hot log.
	if tail, err = j.Record(ctx, multiChange("t-after")); err != nil {
		t.Fatal(err)
	}
	want = append(want, tail.Sequence)
	check(t, j, "archive and hot log")
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir)
	if !j.fromCheckpoint {
		t.Fatal("the reopen did not use the checkpoint")
	}
	check(t, j, "reopened from the checkpoint")
	j.Close()
	if err := os.Remove(filepath.Join(dir, stateDirName, checkpointFileName)); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir)
	check(t, j, "reopened without a checkpoint")
	j.Close()
	check(t, openT(t, dir, ReadOnly()), "read-only")
}

// TestAStep4DirectoryWithAVersion1CheckpointOpensAndIndexesListedSurfaces
// opens a data directory written by the previous release (golden files in
// testdata/step4-dir-listed: three records, the second listing a second surface,
// and a version-1 checkpoint that cannot say so). The checkpoint is not
// used; the index is rebuilt from the log, so the listed surface finds the
// record, and the next clean close writes a version-2 checkpoint that the
// open after uses.
func TestAStep4DirectoryWithAVersion1CheckpointOpensAndIndexesListedSurfaces(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"hot/00000000000000000001", "state/index.ckpt"} {
		b, err := os.ReadFile(filepath.Join("testdata", "step4-dir-listed", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	check := func(j *Journal) {
		t.Helper()
		res, err := j.Query(context.Background(), Query{Surfaces: []string{"runtime_notifications"}, Limit: -1})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range res.Changes {
			got = append(got, c.EventID)
		}
		if !slices.Equal(got, []string{"g-2", "g-3"}) {
			t.Fatalf("query by the listed surface: %v, want [g-2 g-3]", got)
		}
	}
	j := openT(t, dir)
	if j.fromCheckpoint {
		t.Fatal("a version-1 checkpoint was used")
	}
	check(j)
	j.Close()
	j = openT(t, dir)
	if !j.fromCheckpoint {
		t.Fatal("the version-2 checkpoint written at close was not used")
	}
	check(j)
}

// TestValidateReportsAStoredRecordThatListsASurfaceItsPolicyRefuses opens
// a directory the previous release wrote (testdata/step4-foreign-listing:
// a runtime.work_session record that lists the authority-adjacent
// runtime_approvals, which that release let through): validate names the
// listed surface and its policy, and the record stays readable under it.
func TestValidateReportsAStoredRecordThatListsASurfaceItsPolicyRefuses(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("testdata", "step4-foreign-listing", "hot", "00000000000000000001"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "hot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hot", "00000000000000000001"), b, 0o640); err != nil {
		t.Fatal(err)
	}
	rep, err := ValidateDir(context.Background(), dir, ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean || !slices.ContainsFunc(rep.Problems, func(p Problem) bool {
		return p.Sequence == 1 && strings.Contains(p.Message, `"runtime_approvals"`) && strings.Contains(p.Message, "owner source")
	}) {
		t.Fatalf("validate did not report the listed surface's policy: %+v", rep.Problems)
	}
	j := openT(t, dir, ReadOnly())
	res, err := j.Query(context.Background(), Query{Surfaces: []string{"runtime_approvals"}})
	if err != nil || len(res.Changes) != 1 || res.Changes[0].EventID != "f-1" {
		t.Fatalf("query by the listed surface: %+v %v", res.Changes, err)
	}
}
