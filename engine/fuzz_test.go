package engine

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/parse"
	"github.com/agentruntime/statejournal/types"
)

// fuzzSecrets are FAKE secrets (built at run time, see secretCases) that
// the fuzzer's seeds carry into the fields the journal redacts: the token
// shapes that identify themselves wherever they stand.
func fuzzSecrets() []string {
	want := map[string]bool{
		"a JWT": true, "an AWS access key id": true, "a GitHub personal access token": true,
		"a GitHub fine-grained token": true, "a GitLab personal access token": true, "a Slack bot token": true,
		"a Stripe live secret key": true, "an OpenAI project key": true, "an Anthropic API key": true,
		"an npm token": true, "a GCP API key": true,
	}
	var out []string
	for _, sc := range secretCases() {
		if want[sc.name] {
			out = append(out, sc.value)
		}
	}
	if len(out) != len(want) {
		panic("fuzzSecrets: a named secret case is missing")
	}
	return out
}

// fuzzStoredRedacted is the stored text of the fields the journal
// redacts: aggregate_id, artifact_ref, correlation_id, causation_id and
// metadata.
func fuzzStoredRedacted(t *testing.T, c Change) string {
	t.Helper()
	md, err := json.Marshal(c.Metadata)
	if err != nil {
		t.Fatalf("stored metadata does not encode: %v", err)
	}
	return strings.Join([]string{c.AggregateID, c.ArtifactRef, c.CorrelationID, c.CausationID, string(md)}, "\x00")
}

// FuzzParseChange feeds arbitrary bytes to ParseChange and what it
// accepts to Record, on one journal per fuzzing process. Neither may
// panic; every rejection is a *types.FieldError naming its field; an
// accepted record reads back by its sequence with the same event id,
// surface and identity fields; and a secret the input carried in a field
// the journal redacts is nowhere in the stored record.
func FuzzParseChange(f *testing.F) {
	// The seed files in testdata/fuzz/FuzzParseChange hold no secrets;
	// seeds that carry (fake) secrets are built here.
	for _, s := range fuzzSecrets() {
		f.Add([]byte(`{"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":` +
			fuzzQuote(s) + `,"correlation_id":` + fuzzQuote("corr "+s) + `,"metadata":{"note":` + fuzzQuote(s) + `,"token":"x","nested":{"list":[` + fuzzQuote(s) + `]}}}`))
	}
	f.Add([]byte(`{"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":"ws-1"}`))

	dir := f.TempDir()
	j, err := Open(dir, WithSync(SyncNone))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { j.Close() })
	secrets := fuzzSecrets()
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastParseAgrees(t, data)
		c, err := ParseChange(data)
		if err != nil {
			var fe *types.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseChange(%q) error %v (%T) is not a *types.FieldError", data, err, err)
			}
			if fe.Field == "" {
				t.Fatalf("ParseChange(%q): FieldError names no field: %q", data, err)
			}
			return
		}
		rc, err := j.Record(ctx, c)
		if err != nil {
			var fe *types.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Record of %q failed with %v (%T), not a *types.FieldError", data, err, err)
			}
			if fe.Field == "" {
				t.Fatalf("Record of %q: FieldError names no field: %q", data, err)
			}
			return
		}
		res, err := j.Query(ctx, Query{After: rc.Sequence - 1, Limit: 1})
		if err != nil || len(res.Changes) != 1 {
			t.Fatalf("record %d of %q does not read back: %d changes, %v", rc.Sequence, data, len(res.Changes), err)
		}
		got := res.Changes[0]
		if got.Sequence != rc.Sequence || got.EventID != rc.EventID || got.Surface != rc.Surface || got.Surface != c.Surface {
			t.Fatalf("receipt %+v, read back sequence %d event %q surface %q (input surface %q)", rc, got.Sequence, got.EventID, got.Surface, c.Surface)
		}
		if !rc.Duplicate {
			if c.EventID != "" && got.EventID != c.EventID {
				t.Fatalf("event_id %q stored as %q", c.EventID, got.EventID)
			}
			if got.Source != c.Source || got.ChangeType != c.ChangeType || got.AggregateType != c.AggregateType {
				t.Fatalf("stored %q/%q/%q, sent %q/%q/%q", got.Source, got.ChangeType, got.AggregateType, c.Source, c.ChangeType, c.AggregateType)
			}
			if !c.OccurredAt.IsZero() && !got.OccurredAt.Equal(c.OccurredAt) {
				t.Fatalf("occurred_at %s stored as %s", c.OccurredAt.Format(time.RFC3339Nano), got.OccurredAt.Format(time.RFC3339Nano))
			}
			if got.MutatesAuthorityState != c.MutatesAuthorityState {
				t.Fatalf("mutates_authority_state %v stored as %v", c.MutatesAuthorityState, got.MutatesAuthorityState)
			}
		}
		sent, stored := fuzzStoredRedacted(t, c), fuzzStoredRedacted(t, got)
		for _, s := range secrets {
			if fuzzHasToken(sent, s) && fuzzHasToken(stored, s) {
				t.Fatalf("secret %q sent in a redacted field is stored: %q", s, stored)
			}
		}
	})
}

// fuzzHasToken reports whether tok occurs in text as a token of its own:
// not glued to a letter, digit or underscore on either side (a regular
// expression's \b). "0AKIA…" is a different, longer token that no
// detector can call an AWS key id.
func fuzzHasToken(text, tok string) bool {
	word := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
	}
	for i := 0; ; {
		k := strings.Index(text[i:], tok)
		if k < 0 {
			return false
		}
		at := i + k
		end := at + len(tok)
		if (at == 0 || !word(text[at-1])) && (end == len(text) || !word(text[end])) {
			return true
		}
		i = at + 1
	}
}

func fuzzQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// A writer-supplied occurred_at whose UTC time falls outside years
// 0000-9999 (reachable with a legal RFC 3339 offset, or from the Go API)
// must be refused with a FieldError naming occurred_at, or stored so that
// it reads back and the journal still opens.
func TestOccurredAtOutsideTheRFC3339YearsIsRefusedOrReadable(t *testing.T) {
	cases := []struct {
		name string
		at   func() (time.Time, error)
	}{
		{"year 0000 with a positive offset is year -1 in UTC", func() (time.Time, error) { return parse.Timestamp("0000-01-01T00:00:00+01:00") }},
		{"year 9999 with a negative offset is year 10000 in UTC", func() (time.Time, error) { return parse.Timestamp("9999-12-31T23:59:59-23:59") }},
		{"a Go caller's time in year 12000", func() (time.Time, error) { return time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			at, err := tc.at()
			if err != nil {
				var fe *types.FieldError
				if errors.As(err, &fe) && fe.Field == "occurred_at" {
					return
				}
				t.Fatalf("parse: %v", err)
			}
			dir := t.TempDir()
			j, err := Open(dir, WithSync(SyncNone))
			if err != nil {
				t.Fatal(err)
			}
			c := heartbeat("ws-time")
			c.OccurredAt = at
			rc, err := j.Record(context.Background(), c)
			if err != nil {
				j.Close()
				var fe *types.FieldError
				if !errors.As(err, &fe) || fe.Field != "occurred_at" {
					t.Fatalf("refused with %v, want a FieldError naming occurred_at", err)
				}
				return
			}
			res, qerr := j.Query(context.Background(), Query{After: rc.Sequence - 1})
			j.Close()
			j2, oerr := Open(dir)
			if oerr == nil {
				j2.Close()
			}
			if qerr != nil || len(res.Changes) != 1 || oerr != nil {
				t.Fatalf("Record accepted occurred_at %s (sequence %d) but the record cannot be read back:\n  query: %v\n  reopen: %v\n"+
					"the stored text (TimeLayout) is not RFC 3339 outside years 0000-9999; prepare (engine/prepare.go, the OccurredAt checks) should refuse it with a FieldError naming occurred_at",
					at, rc.Sequence, qerr, oerr)
			}
		})
	}
}

// Every ParseChange error names the field at fault: "body" for a body
// that is not one JSON object, the key for a key that is not a field (an
// empty key included), as the fuzz target requires of every input.
func TestParseChangeErrorsAlwaysNameAField(t *testing.T) {
	cases := []struct {
		name, in string
	}{
		{"a number body names the body", `1`},
		{"an array body names the body", `[]`},
		{"a string body names the body", `"change"`},
		{"a boolean body names the body", `true`},
		{"an empty key names the empty key", `{"":0}`},
		{"an empty key beside real fields names the empty key", `{"surface":"runtime_work_session","":{}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseChange([]byte(tc.in))
			var fe *types.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseChange(%s) = %v, want an ErrInvalid FieldError", tc.in, err)
			}
			if fe.Field == "" {
				t.Fatalf("ParseChange(%s) names no field (message %q): jsonFieldError in engine/change.go leaves Field empty "+
					"for an unknown key that is the empty string (it strips the quotes of `json: unknown field \"\"`)", tc.in, err)
			}
		})
	}
}
