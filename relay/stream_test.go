package relay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestTheStreamIsCreatedCheckedAndChangedAsTheFlagsSay(t *testing.T) {
	ns := startNATS(t, t.TempDir(), 0)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	filter := "state.h.>"

	_, rep, err := ensureStream(ctx, js, StreamConfig{Name: "S1", MaxAge: 30 * time.Second}, filter)
	if err != nil || !rep.Created || rep.Dupes != (30*time.Second).String() || rep.Subjects[0] != DefaultSubjects {
		t.Fatalf("create: %+v %v (want created, duplicates cut to the max age)", rep, err)
	}
	_, rep, err = ensureStream(ctx, js, StreamConfig{Name: "S1"}, filter)
	if err != nil || rep.Created || len(rep.Changed) != 0 {
		t.Fatalf("check with nothing given: %+v %v (want unchanged)", rep, err)
	}
	_, rep, err = ensureStream(ctx, js, StreamConfig{Name: "S1", MaxAge: time.Hour, Duplicates: 10 * time.Second, MaxMsgs: 1000}, filter)
	if err != nil || len(rep.Changed) != 3 || rep.MaxAge != time.Hour.String() || rep.Dupes != (10*time.Second).String() || rep.MaxMsgs != 1000 {
		t.Fatalf("change: %+v %v", rep, err)
	}
	s, _ := js.Stream(ctx, "S1")
	if c := s.CachedInfo().Config; c.MaxAge != time.Hour || c.Duplicates != 10*time.Second || c.MaxMsgs != 1000 || c.Storage != jetstream.FileStorage {
		t.Fatalf("the server's stream config %+v", c)
	}

	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "MEM", Subjects: []string{"state.>"}, Storage: jetstream.MemoryStorage}); err == nil {
		t.Fatal("a second stream over state.> should overlap") // JetStream refuses overlapping subjects
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "MEM", Subjects: []string{"mem.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ensureStream(ctx, js, StreamConfig{Name: "MEM"}, "mem.h.>"); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("a memory stream: %v, want it refused naming the storage", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ensureStream(ctx, js, StreamConfig{Name: "OTHER"}, filter); err == nil || !strings.Contains(err.Error(), "do not take state.h.>") {
		t.Fatalf("a stream whose subjects miss the host's: %v", err)
	}
	if (StreamConfig{Name: "X", MaxAge: time.Minute, Duplicates: time.Hour}).check() == nil {
		t.Fatal("duplicates longer than max age must be refused")
	}
}

func TestSubjectCoverage(t *testing.T) {
	for _, tc := range []struct {
		p, f string
		want bool
	}{
		{"state.>", "state.h.>", true},
		{"state.*.>", "state.h.>", true},
		{"state.h.>", "state.h.>", true},
		{"state.h.*.*", "state.h.>", false},
		{"state.other.>", "state.h.>", false},
		{">", "state.h.>", true},
		{"state", "state.h.>", false},
	} {
		if got := covers(tc.p, tc.f); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.p, tc.f, got, tc.want)
		}
	}
}
