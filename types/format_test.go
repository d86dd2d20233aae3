package types

import (
	"testing"
	"time"
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
