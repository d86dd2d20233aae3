package redact

// Byte classes used by the scanners. One table lookup per byte keeps the
// hot path branch-light.
const (
	cLower  uint8 = 1 << iota // a-z
	cUpper                    // A-Z
	cDigit                    // 0-9
	cTok                      // [A-Za-z0-9+/=_-]: bytes of a high-entropy run
	cB64URL                   // [A-Za-z0-9_-]
	cSpace                    // ' ' \t \n \v \f \r
	cValEnd                   // bytes that end an assigned value
	cKey                      // [A-Za-z0-9_.-]: bytes of a key in "key=value"

	cAlpha = cLower | cUpper
	cAlnum = cLower | cUpper | cDigit
)

var class = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cLower | cTok | cB64URL | cKey
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cUpper | cTok | cB64URL | cKey
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= cDigit | cTok | cB64URL | cKey
	}
	for _, c := range "+/=" {
		t[c] |= cTok
	}
	for _, c := range "_-" {
		t[c] |= cTok | cB64URL | cKey
	}
	t['.'] |= cKey
	for _, c := range " \t\n\v\f\r" {
		t[c] |= cSpace | cValEnd
	}
	for _, c := range "\"'`,;&)]}<>" {
		t[c] |= cValEnd
	}
	return t
}()

// span returns the end of the run of bytes of class mask starting at i.
func span(s string, i int, mask uint8) int {
	for i < len(s) && class[s[i]]&mask != 0 {
		i++
	}
	return i
}

// skipSpaces returns the index of the first non-space byte at or after i.
func skipSpaces(s string, i int) int {
	for i < len(s) && class[s[i]]&cSpace != 0 {
		i++
	}
	return i
}

// mixed reports whether s holds at least two of lower, upper and digit.
func mixed(s string) bool {
	var seen uint8
	for i := 0; i < len(s); i++ {
		seen |= class[s[i]] & cAlnum
	}
	return seen == cLower|cUpper || seen == cLower|cDigit || seen == cUpper|cDigit || seen == cAlnum
}

// hasPrefixFold reports whether s starts with the lowercase ASCII prefix p,
// ignoring ASCII case.
func hasPrefixFold(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[i] {
			return false
		}
	}
	return true
}
