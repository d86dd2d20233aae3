package main

// Black-box tests of the cursor vocabulary and the list semantics the CLI
// shares with GET /v1/changes.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// cursorList is state-journal --json with the whole cursor vocabulary.
type cursorList struct {
	Changes     []map[string]any `json:"changes"`
	Order       string           `json:"order"`
	After       *uint64          `json:"after"`
	Head        uint64           `json:"head"`
	Horizon     uint64           `json:"horizon"`
	More        bool             `json:"more"`
	ResumeAfter *uint64          `json:"resume_after"`
}

func cursorListOf(t *testing.T, dir string, args ...string) cursorList {
	t.Helper()
	var l cursorList
	decode(t, mustOK(t, dir, append([]string{"state-journal", "--json"}, args...)...), &l)
	if l.ResumeAfter == nil {
		t.Fatalf("state-journal --json %v has no resume_after", args)
	}
	return l
}

func TestListsSelectTheNewestAndSpeakTheCursorVocabulary(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	seed(t, dir, "ws", 120)
	cases := []struct {
		name   string
		args   []string
		want   []uint64
		order  string
		resume uint64
		more   bool
	}{
		{"-n 4 keeps the newest 4, newest first", []string{"-n", "4"}, []uint64{120, 119, 118, 117}, "newest", 120, true},
		{"-n 4 --oldest-first keeps the newest 4, printed oldest first", []string{"-n", "4", "--oldest-first"}, []uint64{117, 118, 119, 120}, "oldest", 120, true},
		{"--after pages forward from the cursor", []string{"--after", "10", "-n", "3"}, []uint64{11, 12, 13}, "oldest", 13, true},
		{"--after 0 is a cursor: paging from the first record", []string{"--after", "0", "-n", "2"}, []uint64{1, 2}, "oldest", 2, true},
		{"-r after a cursor keeps the newest after it, newest first", []string{"--after", "100", "-n", "3", "-r"}, []uint64{120, 119, 118}, "newest", 120, true},
		{"a cursor past the head is an empty list with the head", []string{"--after", "500"}, []uint64{}, "oldest", 500, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := cursorListOf(t, dir, tc.args...)
			if got := seqsOf(t, l.Changes); !slices.Equal(got, tc.want) {
				t.Fatalf("sequences %v, want %v", got, tc.want)
			}
			if l.Order != tc.order || l.Head != 120 || l.Horizon != 1 || *l.ResumeAfter != tc.resume || l.More != tc.more {
				t.Fatalf("order %q head %d horizon %d resume_after %d more %v", l.Order, l.Head, l.Horizon, *l.ResumeAfter, l.More)
			}
			if withCursor := slices.Contains(tc.args, "--after"); withCursor != (l.After != nil) {
				t.Fatalf("after echoed %v, want it only with --after", l.After)
			}
		})
	}
	t.Run("the default limit is the HTTP API's, 100", func(t *testing.T) {
		l := cursorListOf(t, dir)
		if len(l.Changes) != 100 || !l.More {
			t.Fatalf("default listing: %d records, more %v; want 100 and more", len(l.Changes), l.More)
		}
		srv := startServer(t, dir)
		_, body := srv.get(t, "/v1/changes")
		var h cursorList
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatal(err)
		}
		if len(h.Changes) != len(l.Changes) || h.ResumeAfter == nil || *h.ResumeAfter != *l.ResumeAfter || h.Order != l.Order {
			t.Fatalf("HTTP answers %d records resume_after %v order %q; the CLI %d, %d, %q", len(h.Changes), h.ResumeAfter, h.Order,
				len(l.Changes), *l.ResumeAfter, l.Order)
		}
		srv.stop(t)
	})
	t.Run("an empty table says so with the head", func(t *testing.T) {
		r := mustOK(t, dir, "state-journal", "--after", "500")
		if !strings.Contains(r.stdout, "No entries (head 120, horizon 1)") {
			t.Fatalf("empty table: %s", r)
		}
	})
	t.Run("--oldest-first and --reverse together are a usage error", func(t *testing.T) {
		if r := jc(t, dir, "state-journal", "--oldest-first", "-r"); r.code != 2 {
			t.Fatalf("want exit 2, got %s", r)
		}
	})
	t.Run("-o short is one journalctl-like line per record", func(t *testing.T) {
		r := mustOK(t, dir, "state-journal", "-o", "short", "-n", "2", "--oldest-first")
		re := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z runtime\.work_session\[(\d+)\]: runtime_work_session heartbeat work_session/ws-\d+ info`)
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("want 2 lines: %s", r)
		}
		for i, ln := range lines {
			m := re.FindStringSubmatch(ln)
			if m == nil || m[1] != fmt.Sprint(119+i) {
				t.Fatalf("line %d %q does not match %s", i, ln, re)
			}
		}
	})
	t.Run("cloudevents carry the sequence as a lexicographically ordered string", func(t *testing.T) {
		r := mustOK(t, dir, "state-journal", "-o", "cloudevents", "-n", "1")
		var ev map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &ev); err != nil {
			t.Fatal(err)
		}
		if ev["sequence"] != "00000000000000000120" {
			t.Fatalf("sequence %#v, want the string \"00000000000000000120\"", ev["sequence"])
		}
	})
}
