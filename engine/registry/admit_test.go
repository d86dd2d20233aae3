package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/types"
)

func TestAdmitEnforcesTheMigrationPolicy(t *testing.T) {
	r, err := Parse([]byte(`version: 1
surfaces:
  - id: runtime_work_session
    owner: runtime.work_session
    storage: {kind: file, path: .tmp/runtime/work-sessions.json}
    truth: canonical
    change_types: [created, updated, heartbeat]
    journal: {mode: dual}
  - id: runtime_config
    owner: runtime.config
    storage: {kind: file, path: .tmp/runtime/config.json}
    truth: canonical
    journal: {mode: fallback}
  - id: runtime_approvals
    owner: runtime.approvals
    storage: {kind: dir, path: .tmp/runtime/approvals/}
    truth: canonical
    authority: adjacent
    journal: {mode: dual, owner_sources: [runtime.approvals, runtime.operator], mutation_path: runtime/approvals.Store.Apply}
  - id: runtime_leases
    owner: runtime.leases
    storage: {kind: file, path: .tmp/runtime/leases.json}
    truth: canonical
    authority: adjacent
    journal: {mode: fallback, owner_sources: [runtime.leases]}
  - id: runtime_action_timeline
    owner: runtime.action_timeline
    storage: {kind: file, path: .tmp/runtime/action-timeline.jsonl}
    truth: canonical
    journal: {mode: disabled}
`), "policy.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		surface    string
		source     string
		changeType string
		mutates    bool
		kind       error // nil: admitted
		field      string
		problem    string
		allowed    []string
		suggestion string
	}{
		{name: "a change on a dual-mode surface is admitted", surface: "runtime_work_session", source: "runtime.work_session", changeType: "heartbeat"},
		{name: "any source may write a surface that is not authority-adjacent", surface: "runtime_config", source: "runtime.cli", changeType: "invalidated"},
		{name: "an owner source writing an authority-adjacent surface is admitted", surface: "runtime_approvals", source: "runtime.approvals", changeType: "transitioned"},
		{name: "an owner source may mark a change as mutating authority state", surface: "runtime_approvals", source: "runtime.operator", changeType: "updated", mutates: true},
		{
			name: "a surface with journal mode disabled rejects every record", surface: "runtime_action_timeline", source: "runtime.action_timeline", changeType: "created",
			kind: types.ErrPolicy, field: "surface", problem: "has journal mode disabled (not migrated to the journal yet); records are rejected",
		},
		{
			name: "another source writing an authority-adjacent surface is rejected with the owner sources", surface: "runtime_approvals", source: "runtime.dashboard", changeType: "updated",
			kind: types.ErrPolicy, field: "source", problem: `is not an owner source of authority-adjacent surface "runtime_approvals"`, allowed: []string{"runtime.approvals", "runtime.operator"},
		},
		{
			name: "a near-miss source gets a did-you-mean", surface: "runtime_approvals", source: "runtime.approval", changeType: "updated",
			kind: types.ErrPolicy, field: "source", problem: "is not an owner source", allowed: []string{"runtime.approvals", "runtime.operator"}, suggestion: "runtime.approvals",
		},
		{
			name: "an empty source on an authority-adjacent surface is rejected", surface: "runtime_approvals", source: "", changeType: "updated",
			kind: types.ErrPolicy, field: "source", problem: "is required on authority-adjacent surface", allowed: []string{"runtime.approvals", "runtime.operator"},
		},
		{
			name: "an authority-adjacent surface without a mutation path rejects even its owner", surface: "runtime_leases", source: "runtime.leases", changeType: "created",
			kind: types.ErrPolicy, field: "surface", problem: "declares no journal.mutation_path",
		},
		{
			name: "mutates_authority_state on a surface that is not authority-adjacent is rejected", surface: "runtime_work_session", source: "runtime.work_session", changeType: "updated", mutates: true,
			kind: types.ErrPolicy, field: "mutates_authority_state", problem: "only authority-adjacent surfaces written by their owner sources may set it",
		},
		{
			name: "a change type outside the surface's narrowed list is invalid", surface: "runtime_work_session", source: "runtime.work_session", changeType: "expired",
			kind: types.ErrInvalid, field: "change_type", problem: `is not allowed on surface "runtime_work_session"`, allowed: []string{"created", "updated", "heartbeat"},
		},
		{
			name: "a misspelt change type gets a did-you-mean", surface: "runtime_work_session", source: "runtime.work_session", changeType: "hearbeat",
			kind: types.ErrInvalid, field: "change_type", problem: "is not allowed", allowed: []string{"created", "updated", "heartbeat"}, suggestion: "heartbeat",
		},
		{
			name: "a surface that does not narrow change types still refuses unknown ones", surface: "runtime_config", source: "runtime.config", changeType: "renamed",
			kind: types.ErrInvalid, field: "change_type", problem: "is not allowed", allowed: record.ChangeTypes(),
		},
		{
			name: "an empty change type is required", surface: "runtime_config", source: "runtime.config", changeType: "",
			kind: types.ErrInvalid, field: "change_type", problem: "is required", allowed: record.ChangeTypes(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := r.Lookup(tt.surface)
			if !ok {
				t.Fatalf("no surface %s", tt.surface)
			}
			err := s.Admit(tt.source, tt.changeType, tt.mutates)
			if tt.kind == nil {
				if err != nil {
					t.Fatalf("Admit = %v, want admitted", err)
				}
				return
			}
			var fe *types.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Admit = %v, want a *types.FieldError", err)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("kind %v, want %v", fe.Kind, tt.kind)
			}
			want(t, fe.Field, tt.field)
			want(t, fe.Index, -1)
			if !strings.Contains(fe.Problem, tt.problem) {
				t.Errorf("problem %q, want it to say %q", fe.Problem, tt.problem)
			}
			if !slices.Equal(fe.Allowed, tt.allowed) {
				t.Errorf("allowed %v, want %v", fe.Allowed, tt.allowed)
			}
			want(t, fe.Suggestion, tt.suggestion)
		})
	}
}

func TestAdmitErrorsDoNotShareTheRegistrysLists(t *testing.T) {
	s, _ := Default().Lookup("runtime_leases")
	err := s.Admit("someone.else", "created", false)
	var fe *types.FieldError
	if !errors.As(err, &fe) || len(fe.Allowed) == 0 {
		t.Fatalf("Admit = %v", err)
	}
	fe.Allowed[0] = "mutated"
	if s.Journal.OwnerSources[0] == "mutated" {
		t.Fatal("the error's Allowed aliases the surface's owner sources")
	}
}

func TestAdmitOnTheDefaultCatalog(t *testing.T) {
	r := Default()
	for _, s := range r.Surfaces() {
		err := s.Admit(s.Owner, s.ChangeTypes[0], false)
		switch {
		case s.Journal.Mode == ModeDisabled:
			if !errors.Is(err, types.ErrPolicy) {
				t.Errorf("%s: disabled surface admitted its owner: %v", s.ID, err)
			}
		case err != nil:
			t.Errorf("%s: owner %s rejected: %v", s.ID, s.Owner, err)
		}
	}
}

func TestDefaultSnapshotHintFollowsTheSurfacesEffects(t *testing.T) {
	tests := []struct {
		name string
		s    Surface
		want string
	}{
		{"a declared hint wins", Surface{SnapshotHint: "runtime_budget", AffectsHealth: true}, "runtime_budget"},
		{"a surface affecting health hints runtime_health", Surface{AffectsHealth: true, AffectsActionPanel: true}, SnapshotHealth},
		{"a surface affecting only the panel hints runtime_action_panel", Surface{AffectsActionPanel: true}, SnapshotActionPanel},
		{"a surface affecting neither hints none", Surface{}, SnapshotNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want(t, tt.s.DefaultSnapshotHint(), tt.want)
		})
	}
}

func TestAdmitDoesNotAllocateWhenAdmitting(t *testing.T) {
	s, _ := Default().Lookup("runtime_leases")
	allocs := testing.AllocsPerRun(100, func() {
		if err := s.Admit("runtime.leases", "heartbeat", true); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Admit allocated %v times per admitted change", allocs)
	}
}

func BenchmarkAdmit(b *testing.B) {
	s, _ := Default().Lookup("runtime_leases")
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Admit("runtime.leases", "heartbeat", false)
	}
}
