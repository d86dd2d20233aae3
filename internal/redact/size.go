package redact

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// The functions below compute, without allocating, the exact number of
// bytes encoding/json.Marshal produces for a JSON-like value (with its
// default HTML escaping, which is the longest form: an encoder with
// SetEscapeHTML(false) never writes more).

// asciiJSONSize is the encoded size of each ASCII byte: 2 for the short
// escapes, 6 for \u00XX (control bytes and the HTML-escaped < > &), else 1.
var asciiJSONSize = func() (t [utf8.RuneSelf]uint8) {
	for c := range t {
		switch {
		case c == '\\' || c == '"' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
			t[c] = 2
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			t[c] = 6
		default:
			t[c] = 1
		}
	}
	return t
}()

// jsonStringSize is the encoded size of s including its quotes.
func jsonStringSize(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			n += int(asciiJSONSize[c])
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6 // \ufffd
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

// floatSize mirrors encoding/json's float encoder: 'f' format, or 'e' below
// 1e-6 and from 1e21, with "e-09" shortened to "e-9".
func floatSize(f float64, bits int) int {
	var buf [64]byte
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b := strconv.AppendFloat(buf[:0], f, format, -1, bits)
	n := len(b)
	if format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		n--
	}
	return n
}

func uintSize(u uint64) int {
	n := 1
	for u >= 10 {
		u /= 10
		n++
	}
	return n
}

func intSize(i int64) int {
	if i < 0 {
		return 1 + uintSize(uint64(-(i+1))+1)
	}
	return uintSize(uint64(i))
}

// scalarSize returns the encoded size of a scalar JSON-like value and
// whether v is such a scalar that encodes as it is (NaN, ±Inf and invalid
// json.Number do not).
func scalarSize(v any) (int, bool) {
	switch x := v.(type) {
	case nil:
		return 4, true
	case bool:
		if x {
			return 4, true
		}
		return 5, true
	case string:
		return jsonStringSize(x), true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
		return floatSize(x, 64), true
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return 0, false
		}
		return floatSize(float64(x), 32), true
	case int:
		return intSize(int64(x)), true
	case int8:
		return intSize(int64(x)), true
	case int16:
		return intSize(int64(x)), true
	case int32:
		return intSize(int64(x)), true
	case int64:
		return intSize(x), true
	case uint:
		return uintSize(uint64(x)), true
	case uint8:
		return uintSize(uint64(x)), true
	case uint16:
		return uintSize(uint64(x)), true
	case uint32:
		return uintSize(uint64(x)), true
	case uint64:
		return uintSize(x), true
	case uintptr:
		return uintSize(uint64(x)), true
	case json.Number:
		if x == "" {
			return 1, true // encoding/json writes "0"
		}
		if !validNumber(string(x)) {
			return 0, false
		}
		return len(x), true
	}
	return 0, false
}

// validNumber reports whether s is a JSON number literal (the check
// encoding/json applies to json.Number).
func validNumber(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = s[1:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = s[2:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			if s == "" {
				return false
			}
		}
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	return s == ""
}
