package coverage

import (
	"fmt"
	"testing"
	"time"
)

// Records with a fingerprint are found by it, whatever else the window
// holds, and forgetting the old ones leaves no empty entry behind: the
// map stays as small as the records kept.
func TestExactRecordsAreFoundByFingerprintAndForgottenWithoutATrace(t *testing.T) {
	var tg target
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	window := 10 * time.Second
	// Fifteen seconds of heartbeats of other files, and two versions of
	// the file of interest: one before the window, one inside it.
	for i := range 15000 {
		tg.addRecord(&rec{at: t0.Add(time.Duration(i) * time.Millisecond), fp: FingerprintOf(fmt.Appendf(nil, "%d", i))})
	}
	want := FingerprintOf([]byte("the change"))
	old := &rec{at: t0.Add(-time.Minute), fp: want}
	tg.addRecord(old)
	in := &rec{at: t0.Add(15 * time.Second), fp: want}
	tg.addRecord(in)
	tg.addRecord(&rec{at: t0.Add(15 * time.Second)}) // no fingerprint: matched by nearness, never exactly
	c := &change{at: t0.Add(16 * time.Second), fp: want}
	if r := tg.exactRecord(c, window); r != in {
		t.Fatalf("exact match %+v, want the record inside the window %+v", r, in)
	}
	in.used = true
	if r := tg.exactRecord(c, window); r != nil {
		t.Fatalf("a used record matched again: %+v", r)
	}
	if r := tg.nearestRecord(c, window); r == nil || r.fp != "" {
		t.Fatalf("nearest record %+v, want the one without a fingerprint", r)
	}

	// Forget everything committed before t0+15s: the heartbeats and the
	// old version go, map entries and all.
	tg.expireRecords(t0.Add(15 * time.Second))
	if len(tg.exactOrder) != 1 || len(tg.exact) != 1 || len(tg.exact[want]) != 1 || tg.exact[want][0] != in {
		t.Fatalf("after expiry: %d ordered, %d fingerprints (%v), want only the record inside the window", len(tg.exactOrder), len(tg.exact), tg.exact[want])
	}
	tg.forgetRecords()
	if tg.exactRecord(c, window) != nil || len(tg.records) != 0 {
		t.Fatal("records survive forgetRecords")
	}
}

// The bound on kept records holds for fingerprinted ones too.
func TestExactRecordsAreBounded(t *testing.T) {
	var tg target
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i := range maxRecordsPerSurface + 10 {
		tg.addRecord(&rec{at: t0.Add(time.Duration(i) * time.Microsecond), fp: FingerprintOf(fmt.Appendf(nil, "%d", i))})
	}
	if n, m := len(tg.exactOrder), len(tg.exact); n > maxRecordsPerSurface || n != m {
		t.Fatalf("%d records kept in order and %d by fingerprint, want at most %d and the same", n, m, maxRecordsPerSurface)
	}
	first := tg.exactOrder[0]
	if want := FingerprintOf(fmt.Appendf(nil, "%d", maxRecordsPerSurface+10-len(tg.exactOrder))); first.fp != want {
		t.Fatal("the bound did not forget the oldest records first")
	}
}

// An exact match costs one look-up, however many records the window
// holds (a walk over the window cost ~10,000 comparisons a change at a
// thousand changes a second).
func BenchmarkExactMatchInABusyWindow(b *testing.B) {
	var tg target
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	fps := make([]string, 20000)
	for i := range fps {
		fps[i] = FingerprintOf(fmt.Appendf(nil, "%d", i))
		tg.addRecord(&rec{at: t0.Add(time.Duration(i) * time.Millisecond), fp: fps[i]})
	}
	c := &change{at: t0.Add(15 * time.Second), fp: fps[15000]}
	b.ReportAllocs()
	for b.Loop() {
		if tg.exactRecord(c, 10*time.Second) == nil {
			b.Fatal("no match")
		}
	}
}
