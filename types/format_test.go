package types

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestFormatDurationWritesWholeDaysInDaysAndDropsZeroUnits(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                         "0s",
		30 * 24 * time.Hour:       "30d",
		24 * time.Hour:            "1d",
		36 * time.Hour:            "36h",
		90 * time.Minute:          "1h30m",
		90 * time.Second:          "1m30s",
		10 * time.Minute:          "10m",
		time.Hour + 5*time.Second: "1h0m5s",
		250 * time.Millisecond:    "250ms",
		1500 * time.Millisecond:   "1.5s",
		-2 * time.Hour:            "-2h",
	} {
		got := FormatDuration(d)
		if got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		// What is written parses back (days via the day rule).
		if d%(24*time.Hour) != 0 || d == 0 {
			if back, err := time.ParseDuration(got); err != nil || back != d {
				t.Errorf("%q does not parse back to %v: %v %v", got, d, back, err)
			}
		}
	}
}

func TestFormatTimeHasNineFractionalDigitsInUTC(t *testing.T) {
	tm := time.Date(2026, 12, 1, 23, 4, 5, 120000000, time.FixedZone("x", 3600))
	if got := FormatTime(tm); got != "2026-12-01T22:04:05.120000000Z" {
		t.Fatalf("FormatTime = %q", got)
	}
}

func TestAppendTimeWritesWhatTheLayoutWrites(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	times := []time.Time{
		{},
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Date(2026, 11, 26, 17, 51, 57, 123456789, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999999999, east),
		time.Date(2261, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // past the fast path
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, tm := range times {
		want := tm.UTC().Format(TimeLayout)
		if got := string(AppendTime([]byte("x"), tm)); got != "x"+want {
			t.Errorf("AppendTime(%v) = %q, want %q", tm, got, "x"+want)
		}
		if got := FormatTime(tm); got != want {
			t.Errorf("FormatTime(%v) = %q, want %q", tm, got, want)
		}
	}
}

func BenchmarkAppendTime(b *testing.B) {
	tm := time.Date(2026, 11, 26, 17, 51, 57, 123456789, time.UTC)
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for range b.N {
		buf = AppendTime(buf[:0], tm)
	}
}

func TestClipKeepsAtMostNBytesCutOnARuneBoundaryAndMarksTheCut(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"a value that fits is kept whole", "runtime_config", 80, "runtime_config"},
		{"a value of exactly n bytes is kept whole", strings.Repeat("a", 80), 80, strings.Repeat("a", 80)},
		{"a longer ASCII value keeps n-3 bytes and the mark", strings.Repeat("a", 81), 80, strings.Repeat("a", 77) + "…"},
		{"a cut inside a rune moves back to its start", strings.Repeat("é", 60), 80, strings.Repeat("é", 38) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Clip(tc.in, tc.n)
			if got != tc.want || len(got) > tc.n || !utf8.ValidString(got) {
				t.Errorf("Clip(%q, %d) = %q (%d bytes), want %q", tc.in, tc.n, got, len(got), tc.want)
			}
		})
	}
}
