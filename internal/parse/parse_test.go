package parse

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/types"
)

func TestDurationAcceptsTheDocumentedWordsAndRefusesTheRest(t *testing.T) {
	ok := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"30s", 30 * time.Second},
		{"15m", 15 * time.Minute},
		{"36h", 36 * time.Hour},
		{"7d", 7 * 24 * time.Hour},
		{"2w", 14 * 24 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"1d12h", 36 * time.Hour},
		{"250ms", 250 * time.Millisecond},
		{" 10m ", 10 * time.Minute},
	}
	for _, tt := range ok {
		got, err := Duration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Duration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "10", "-5m", "5x", "1.2.3s", "m", "yesterday", "101y", "36500000h", "5 m"} {
		if d, err := Duration(in); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("Duration(%q) = %v, %v; want an error", in, d, err)
		} else if !strings.Contains(err.Error(), "30s") && !strings.Contains(err.Error(), "100 years") && !strings.Contains(err.Error(), "negative") {
			t.Errorf("Duration(%q) error %q names no allowed example", in, err)
		}
	}
}

func TestTimeAcceptsRFC3339ADateNowAndADurationAgo(t *testing.T) {
	now := time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
	ok := []struct {
		in   string
		want time.Time
	}{
		{"2026-12-01T10:00:00Z", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{"2026-12-01T10:00:00.5+01:00", time.Date(2026, 12, 1, 9, 0, 0, 5e8, time.UTC)},
		{"2026-12-01", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"now", now},
		{"2w", now.Add(-14 * 24 * time.Hour)},
		{"36h", now.Add(-36 * time.Hour)},
	}
	for _, tt := range ok {
		got, err := Time(tt.in, now)
		if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("Time(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "yesterday", "2026-13-01", "2026-12-01T10:00", "12/01/2026"} {
		if _, err := Time(in, now); err == nil {
			t.Errorf("Time(%q) succeeded; want an error", in)
		} else if !strings.Contains(err.Error(), "RFC 3339") {
			t.Errorf("Time(%q) error %q does not say what is allowed", in, err)
		}
	}
}

func TestTimestampTakesOnlyRFC3339(t *testing.T) {
	if _, err := Timestamp("2026-12-01T10:00:00.123Z"); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"2026-12-01", "7d", "now", ""} {
		if _, err := Timestamp(in); err == nil {
			t.Errorf("Timestamp(%q) succeeded; want an error", in)
		}
	}
}

func TestSizeReadsBinaryAndDecimalUnitsInAnyCase(t *testing.T) {
	ok := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"512", 512},
		{"512B", 512},
		{"64K", 64 << 10},
		{"64M", 64 << 20},
		{"64m", 64 << 20},
		{"64Mi", 64 << 20},
		{"64MiB", 64 << 20},
		{"64mib", 64 << 20},
		{"64MB", 64e6},
		{"64mb", 64e6},
		{"1.5GiB", 3 << 29},
		{"1.5G", 3 << 29},
		{"2TB", 2e12},
		{"1 GiB", 1 << 30},
		{"0.1K", 102},
	}
	for _, tt := range ok {
		got, err := Size(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Size(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "M", "-1", "64X", "64MiBs", "1.2.3M", ".5M", "99999999999TiB", "lots"} {
		if n, err := Size(in); err == nil {
			t.Errorf("Size(%q) = %d; want an error", in, n)
		}
	}
}

func TestBoolIsStrict(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "TRUE": true, "True": true, "1": true, "false": false, "FALSE": false, "0": false} {
		got, err := Bool(in)
		if err != nil || got != want {
			t.Errorf("Bool(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yes", "no", "on", "off", "t", "2"} {
		_, err := Bool(in)
		var pe *Error
		if !errors.As(err, &pe) || len(pe.Allowed) != 4 {
			t.Errorf("Bool(%q) error %v; want a *parse.Error listing the allowed words", in, err)
		}
	}
}

// Every duration the JSON answers write (types.FormatDuration) reads back.
func TestDurationReadsWhatFormatDurationWrites(t *testing.T) {
	for _, d := range []time.Duration{0, 250 * time.Millisecond, 1500 * time.Microsecond, 90 * time.Second, 36 * time.Hour,
		30 * 24 * time.Hour, 24*time.Hour + time.Second, 7*time.Hour + 3*time.Minute + 4*time.Second + 5*time.Millisecond} {
		s := types.FormatDuration(d)
		got, err := Duration(s)
		if err != nil || got != d {
			t.Errorf("Duration(FormatDuration(%v) = %q) = %v, %v", d, s, got, err)
		}
	}
}
