package types

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TimeLayout is the one way a time is written in JSON, by the CLI and the
// HTTP API alike: RFC 3339 in UTC with exactly nine fractional digits
// (nanoseconds), so that times compare as strings and never lose
// precision. Any RFC 3339 time is accepted on input.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// FormatTime writes t in TimeLayout.
func FormatTime(t time.Time) string { return string(AppendTime(nil, t)) }

// AppendTime appends t in TimeLayout to dst: the same bytes as
// t.UTC().AppendFormat(dst, TimeLayout), written digit by digit for the
// years 0 to 9999 (every time a record holds) because the write path
// formats two per record and the layout interpreter is most of that cost.
func AppendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	hour, min, sec := t.Clock()
	ns := t.Nanosecond()
	var b [30]byte // 2006-01-02T15:04:05.000000000Z
	put := func(at, v, width int) {
		for i := at + width - 1; i >= at; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, year, 4)
	b[4] = '-'
	put(5, int(month), 2)
	b[7] = '-'
	put(8, day, 2)
	b[10] = 'T'
	put(11, hour, 2)
	b[13] = ':'
	put(14, min, 2)
	b[16] = ':'
	put(17, sec, 2)
	b[19] = '.'
	put(20, ns, 9)
	b[29] = 'Z'
	return append(dst, b[:]...)
}

// FormatDuration is the one way a duration is written, in JSON and for
// people: a string in the syntax every duration flag and parameter
// accepts. A whole number of days is written in days ("30d", "1d");
// anything else in Go's syntax without its zero units ("36h", "1h30m",
// "1m30s", "250ms"). Zero is "0s".
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d != 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Clip bounds a value echoed in a message to at most n bytes (n > 3): s
// itself when it fits, else its longest prefix that ends on a rune
// boundary (CutUTF8) and leaves room for the "…" that marks the cut.
// Every layer that echoes a value (the record contract, the registry,
// the server) clips with it.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return CutUTF8(s, n-len(ellipsis)) + ellipsis
}

const ellipsis = "…"

// CutUTF8 returns the longest prefix of s of at most n bytes that does
// not end inside a UTF-8 sequence (a plain cut at n where s is not UTF-8
// there). Every helper that bounds a value echoed in a message cuts with
// it, so none splits a rune.
func CutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for j := n; j > 0 && j > n-utf8.UTFMax; j-- {
		if utf8.RuneStart(s[j]) {
			return s[:j]
		}
	}
	return s[:n]
}
