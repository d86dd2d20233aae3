package relay

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/types"
)

// A cursor behind the stream (a crash between JetStream's acks and the
// cursor write) or no cursor at all: the relay counts what the stream
// holds and sends nothing twice, though the dedupe window is long past.
func TestAStaleOrMissingCursorIsReconciledWithTheStreamBeyondTheDedupeWindow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale func(dir string, c Cursor)
	}{
		{"a cursor 60 records behind", func(dir string, c Cursor) {
			c.Sequence, c.StreamSequence = 40, 40
			if err := writeCursor(dir, c); err != nil {
				t.Fatal(err)
			}
		}},
		{"no cursor file", func(dir string, c Cursor) {
			os.Remove(filepath.Join(dir, stateDir, CursorFileName))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := startNATS(t, t.TempDir(), 0)
			dir := t.TempDir()
			j := openJournal(t, dir)
			writeN(t, j, 100)
			cfg := Config{URL: ns.ClientURL(), Host: "h", Logger: quietLogger(), Tick: 20 * time.Millisecond, Stream: StreamConfig{Duplicates: 100 * time.Millisecond}}
			r, _ := New(j, cfg)
			stop := runRelay(t, r)
			waitFor(t, "100 shipped", func() bool { return r.Status().Shipped == 100 })
			stop()
			r.Close()
			c, _, _ := ReadCursor(dir, j.Status().JournalID)
			tc.stale(dir, c)
			time.Sleep(150 * time.Millisecond) // past the dedupe window
			writeN(t, j, 20)
			r2, _ := New(j, cfg)
			defer r2.Close()
			stop2 := runRelay(t, r2)
			waitFor(t, "120 shipped", func() bool { return r2.Status().Shipped == 120 })
			stop2()
			checkExactlyOnce(t, readStream(t, ns.ClientURL(), DefaultStream), "h", 120)
		})
	}
}

func TestADamagedForeignOrRenamedCursorIsRefusedNamingTheFile(t *testing.T) {
	ns := startNATS(t, t.TempDir(), 0)
	dir := t.TempDir()
	j := openJournal(t, dir)
	writeN(t, j, 10)
	id := j.Status().JournalID
	path := filepath.Join(dir, stateDir, CursorFileName)
	good := Cursor{JournalID: id, Host: "h", Stream: DefaultStream, Sequence: 5}
	for _, tc := range []struct {
		name  string
		write func()
		want  error
		host  string
	}{
		{"a flipped byte fails the checksum", func() {
			writeCursor(dir, good)
			b, _ := os.ReadFile(path)
			os.WriteFile(path, []byte(strings.Replace(string(b), `"sequence":5`, `"sequence":9`, 1)), 0o644)
		}, types.ErrIntegrity, "h"},
		{"another journal's cursor is foreign", func() {
			c := good
			c.JournalID = "0192f0c4-0000-7000-8000-000000000000"
			writeCursor(dir, c)
		}, types.ErrForeign, "h"},
		{"a cursor of another host is a conflict", func() { writeCursor(dir, good) }, types.ErrRelayConflict, "other"},
		{"garbage", func() { os.WriteFile(path, []byte("{\"version\":1,"), 0o644) }, types.ErrIntegrity, "h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.write()
			r, err := New(j, Config{URL: ns.ClientURL(), Host: tc.host, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			err = runRelay(t, r)()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "relay.json") {
				t.Fatalf("got %v, want %v naming state/relay.json", err, tc.want)
			}
		})
	}
}

// Two journals under one host name would interleave in one subject
// space: the second is refused, naming the other journal.
func TestASecondJournalUnderTheSameHostNameIsRefused(t *testing.T) {
	ns := startNATS(t, t.TempDir(), 0)
	j1 := openJournal(t, t.TempDir())
	j2 := openJournal(t, t.TempDir())
	writeN(t, j1, 5)
	writeN(t, j2, 5)
	r1, _ := New(j1, Config{URL: ns.ClientURL(), Host: "same", Logger: quietLogger(), Tick: 20 * time.Millisecond})
	defer r1.Close()
	stop := runRelay(t, r1)
	waitFor(t, "the first journal shipped", func() bool { return r1.Status().Shipped == 5 })
	stop()
	r2, _ := New(j2, Config{URL: ns.ClientURL(), Host: "same", Logger: quietLogger()})
	defer r2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := r2.Run(ctx)
	if !errors.Is(err, types.ErrRelayConflict) || !strings.Contains(err.Error(), j1.Status().JournalID) {
		t.Fatalf("got %v, want a relay conflict naming journal %s", err, j1.Status().JournalID)
	}
}
