package relay

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Two journals (two data directories, two hosts, two relays) feed one
// stream; a follower of the stream sees both hosts' records with their
// subjects, each host's in its journal's order, and a follower filtered
// to one host sees only that host's.
func TestTwoHostsFeedOneStreamAndAFollowerSeesBothInEachHostsOrder(t *testing.T) {
	ns := startNATS(t, t.TempDir(), 0)
	hosts := []string{"host-a", "host-b"}
	var relays []*Relay
	for i, h := range hosts {
		j := openJournal(t, t.TempDir())
		r, err := New(j, Config{URL: ns.ClientURL(), Host: h, Logger: quietLogger(), Tick: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		runRelay(t, r)
		relays = append(relays, r)
		writeN(t, j, 100+50*i)
	}
	// The follower needs the stream, which the first relay creates.
	waitFor(t, "the stream created", func() bool { return relays[0].Status().StreamReport != nil })
	want := map[string]uint64{"host-a": 100, "host-b": 150}
	errDone := errors.New("done")
	follow := func(cfg FollowConfig) map[string]uint64 {
		got := map[string]uint64{}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := FollowStream(ctx, cfg, func(m Message) error {
			if m.Change.Sequence != got[m.Host]+1 {
				t.Fatalf("host %s: record %d after %d", m.Host, m.Change.Sequence, got[m.Host])
			}
			if want := Subject(m.Host, &m.Change); m.Subject != want {
				t.Fatalf("subject %q, want %q", m.Subject, want)
			}
			got[m.Host] = m.Change.Sequence
			for _, h := range cfg.Hosts {
				if got[h] != want[h] {
					return nil
				}
			}
			if len(cfg.Hosts) == 0 && (got["host-a"] != want["host-a"] || got["host-b"] != want["host-b"]) {
				return nil
			}
			return errDone
		})
		if !errors.Is(err, errDone) {
			t.Fatalf("follow: %v (got %v)", err, got)
		}
		return got
	}
	got := follow(FollowConfig{URL: ns.ClientURL(), HasAfter: true})
	if got["host-a"] != 100 || got["host-b"] != 150 {
		t.Fatalf("the follower saw %v", got)
	}
	only := follow(FollowConfig{URL: ns.ClientURL(), HasAfter: true, Hosts: []string{"host-b"}, ChangeTypes: []string{"heartbeat"}})
	if len(only) != 1 || only["host-b"] != 150 {
		t.Fatalf("the follower of host-b saw %v", only)
	}
}
