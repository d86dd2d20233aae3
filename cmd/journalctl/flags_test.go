package main

import (
	"strings"
	"testing"
	"time"
)

// A duration flag's default is written as every duration is (1d, 5m,
// 10s) and reads back to itself; zero is "0", which the help leaves out.
func TestDurationFlagsWriteTheFormTheyRead(t *testing.T) {
	for _, d := range []time.Duration{24 * time.Hour, 5 * time.Minute, 10 * time.Second, 100 * time.Millisecond, 90 * time.Minute, 0} {
		var got time.Duration
		f := newDurationFlag(&got, d)
		s := f.String()
		if strings.Contains(s, "0m0s") || strings.HasSuffix(s, "h0m") {
			t.Errorf("%v is written %q, with zero units", d, s)
		}
		got = -1
		if err := f.Set(s); err != nil || got != d {
			t.Errorf("%v written %q reads back as %v, %v", d, s, got, err)
		}
	}
	if s := (durationFlag{d: new(time.Duration)}).String(); s != "0" {
		t.Errorf("zero is written %q, want 0", s)
	}
	r := mustOK(t, t.TempDir(), "state-coverage", "--help")
	for _, want := range []string{"(default 1d)", "(default 5m)", "(default 10s)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("state-coverage --help lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "0m0s") || strings.Contains(r.stdout, "(default 0") {
		t.Errorf("state-coverage --help writes a duration in Go's long form or shows a zero default:\n%s", r.stdout)
	}
}
