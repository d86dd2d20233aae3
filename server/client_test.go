package server

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/types"
)

func hb(id string) engine.Change {
	return engine.Change{Source: "runtime.work_session", Surface: "runtime_work_session", ChangeType: "heartbeat",
		AggregateType: "work_session", AggregateID: id}
}

func TestClientRoundTrip(t *testing.T) {
	const token = "client-token-for-tests"
	e := start(t, Config{Token: token})
	ctx := context.Background()
	at := time.Date(2026, 11, 26, 17, 51, 57, 123456789, time.UTC)
	clients := []struct {
		name, key string
		c         *Client
	}{
		{"over the Unix socket", "retry-key-unix", Dial(e.srv.SocketPath(), e.srv.Addr(), "")},
		{"over TCP with the token", "retry-key-tcp", Dial("", e.srv.Addr(), token)},
		{"over TCP when the socket is gone", "retry-key-fallback", Dial(filepath.Join(t.TempDir(), "gone.sock"), e.srv.Addr(), token)},
	}
	for _, tc := range clients {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.c.Close()
			before := e.j.Status().LastSequence
			first := hb("ws-client")
			first.OccurredAt = at
			first.Metadata = map[string]any{"phase": "build"}
			second := hb("ws-client-2")
			second.EventID = tc.key
			rcs, err := tc.c.Record(ctx, []engine.Change{first, second})
			if err != nil {
				t.Fatal(err)
			}
			if len(rcs) != 2 || rcs[0].Sequence != before+1 || rcs[1].Sequence != before+2 || rcs[1].EventID != second.EventID {
				t.Fatalf("receipts %+v", rcs)
			}
			res, err := e.j.Query(ctx, engine.Query{After: before})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Changes) != 2 || !res.Changes[0].OccurredAt.Equal(at) || res.Changes[0].Metadata["phase"] != "build" {
				t.Fatalf("read back %+v", res.Changes)
			}
			st, err := tc.c.Status(ctx)
			if err != nil || st.LastSequence != before+2 || st.Dir != e.j.Dir() {
				t.Fatalf("status %+v, %v", st, err)
			}
			if err := tc.c.Healthz(ctx); err != nil {
				t.Fatalf("healthz: %v", err)
			}
			if rcs, err := tc.c.Record(ctx, nil); rcs != nil || err != nil {
				t.Fatalf("an empty record call: %v %v", rcs, err)
			}
			retry, err := tc.c.Record(ctx, []engine.Change{second})
			if err != nil || !retry[0].Duplicate || retry[0].Sequence != rcs[1].Sequence {
				t.Fatalf("a retry with the same event_id: %+v, %v", retry, err)
			}
		})
	}
}

func TestClientRebuildsTheServersErrors(t *testing.T) {
	e := start(t, Config{Token: "t0ken-long-enough-1", MaxBatch: 3})
	c := Dial("", e.srv.Addr(), "t0ken-long-enough-1")
	defer c.Close()
	ctx := context.Background()
	bad := func(mod func(*engine.Change)) engine.Change {
		ch := hb("ws-bad")
		mod(&ch)
		return ch
	}
	cases := []struct {
		name    string
		changes []engine.Change
		kind    error
		field   string
		index   int
		check   func(t *testing.T, fe *types.FieldError)
	}{
		{"an unknown surface matches ErrUnknownSurface and keeps its suggestion",
			[]engine.Change{bad(func(c *engine.Change) { c.Surface = "runtime_leasess" })}, types.ErrUnknownSurface, "surface", 0,
			func(t *testing.T, fe *types.FieldError) {
				if fe.Suggestion != "runtime_leases" {
					t.Errorf("suggestion %q", fe.Suggestion)
				}
			}},
		{"a bad enum matches ErrInvalid and keeps the allowed values",
			[]engine.Change{bad(func(c *engine.Change) { c.Severity = "meh" })}, types.ErrInvalid, "severity", 0,
			func(t *testing.T, fe *types.FieldError) {
				if len(fe.Allowed) == 0 || fe.Value != "meh" || fe.Problem == "" {
					t.Errorf("field error %+v", fe)
				}
			}},
		{"a policy refusal matches ErrPolicy",
			[]engine.Change{hb("ok"), bad(func(c *engine.Change) { c.MutatesAuthorityState = true })}, types.ErrPolicy, "mutates_authority_state", 1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.j.Status().LastSequence
			_, err := c.Record(ctx, tc.changes)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			var fe *types.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || fe.Index != tc.index {
				t.Fatalf("err = %#v", err)
			}
			if tc.check != nil {
				tc.check(t, fe)
			}
			if types.Code(err) != types.Code(&types.FieldError{Kind: tc.kind}) {
				t.Errorf("code %q", types.Code(err))
			}
			if got := e.j.Status().LastSequence; got != before {
				t.Errorf("last sequence moved from %d to %d", before, got)
			}
		})
	}

	t.Run("a batch over the limit matches ErrTooLarge", func(t *testing.T) {
		_, err := c.Record(ctx, []engine.Change{hb("1"), hb("2"), hb("3"), hb("4")})
		var se *Error
		if !errors.Is(err, ErrTooLarge) || !errors.As(err, &se) || se.StatusCode != 413 || se.Code != "too_large" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a wrong token matches ErrUnauthorized", func(t *testing.T) {
		wrong := Dial("", e.srv.Addr(), "nope")
		defer wrong.Close()
		if _, err := wrong.Record(ctx, []engine.Change{hb("x")}); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a server that is not there is a network error, not an answer", func(t *testing.T) {
		gone := Dial(filepath.Join(t.TempDir(), "none.sock"), "", "")
		defer gone.Close()
		err := gone.Healthz(ctx)
		var se *Error
		if err == nil || errors.As(err, &se) {
			t.Fatalf("err = %v", err)
		}
	})
}
