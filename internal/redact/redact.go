package redact

import (
	"math"
	"strings"
)

// String checks one free-text value (artifact_ref, correlation_id,
// causation_id, aggregate_id and metadata string values). If the value is a
// secret or contains one anywhere, String returns the marker of the first
// secret found (scanning left to right) in place of the WHOLE value, the kind
// and true: the rest of the text is dropped too, so a secret whose end is
// ambiguous can never leak partly. Otherwise it returns s unchanged, "" and
// false. String never allocates (markers are preallocated). A marker is
// never redacted again, so String is idempotent. Rules lists what is
// matched.
func String(s string) (out string, kind Kind, redacted bool) {
	k := detect(s)
	if k == "" {
		return s, "", false
	}
	return Marker(k), k, true
}

const (
	// minEntropyRun is the shortest run of [A-Za-z0-9+/=_-] considered by the
	// high-entropy rule.
	minEntropyRun = 32
	// minEntropyCounted is how many letters and digits must remain in a run
	// once identifier segments (hex, ULID) are set aside.
	minEntropyCounted = 24
	// maxEntropyScan bounds the work spent on one very long run.
	maxEntropyScan = 1024
	// maxValue bounds how much of an assigned value ("key=value") is read.
	maxValue = 1024
)

// detect is the single left-to-right pass behind String. Only a few bytes
// trigger a precise matcher: a letter starting a word (provider prefixes,
// Bearer/Basic, JWT, Slack hook), ':' (URL userinfo, "key: value"), '='
// ("key=value"), "-----" (PEM), and the end of a long token run (entropy).
func detect(s string) Kind {
	n := len(s)
	if n < 5 { // the shortest secret this package finds is "pwd=x"
		return ""
	}
	sc := scanner{s: s}
	run := -1 // start of the current [A-Za-z0-9+/=_-] run
	for i := 0; i < n; {
		c := s[i]
		cl := class[c]
		if cl&cAlnum != 0 {
			// A word: only its first byte can trigger a matcher, and it
			// continues the current token run; skip the rest of it.
			if wordTrigger[c] {
				if k := sc.wordRule(i); k != "" {
					return k
				}
			}
			if run < 0 {
				run = i
			}
			for i++; i < n && class[s[i]]&cAlnum != 0; i++ {
			}
			continue
		}
		if cl&cTok != 0 {
			if run < 0 {
				run = i
			}
		} else if run >= 0 {
			if i-run >= minEntropyRun && highEntropy(s[run:i]) {
				return KindHighEntropy
			}
			run = -1
		}
		switch c {
		case ':':
			if i+2 < n && s[i+1] == '/' && s[i+2] == '/' {
				if k := urlRule(s, i); k != "" {
					return k
				}
			} else if k := assignRule(s, i); k != "" {
				return k
			}
		case '=':
			if k := assignRule(s, i); k != "" {
				return k
			}
		case '-':
			if (i == 0 || s[i-1] != '-') && strings.HasPrefix(s[i:], "-----BEGIN ") && pemRule(s[i+len("-----BEGIN "):]) {
				return KindPEMPrivateKey
			}
		}
		i++
	}
	if run >= 0 && n-run >= minEntropyRun && highEntropy(s[run:]) {
		return KindHighEntropy
	}
	return ""
}

// Mask indexes of the run cache.
const (
	runAlnum  = iota // [A-Za-z0-9]
	runB64URL        // [A-Za-z0-9_-]
	runTok           // [A-Za-z0-9+/=_-]
	runPart2         // [A-Za-z0-9_-] after a first '.' (JWT payload, SendGrid secret)
	runPart3         // [A-Za-z0-9_-] after a second '.' (JWT signature)
	numRuns
)

var runMask = [numRuns]uint8{cAlnum, cB64URL, cTok, cB64URL, cB64URL}

// tokenRun caches one maximal run of a byte class. Every start inside a run
// ends where the run ends, and a suffix of a run that does not mix classes
// does not mix them either; caching both keeps detect linear even on
// adversarial input such as "sk-sk-sk-…" or "eyJ-eyJ-…".
type tokenRun struct {
	start, end   int
	notMixedFrom int // [notMixedFrom, end) is known not to mix classes; -1 unknown
}

// scanner is the state of one detect pass (it lives on the stack).
type scanner struct {
	s    string
	runs [numRuns]tokenRun
}

// span returns the end of the run of class m starting at i.
func (sc *scanner) span(i, m int) int {
	r := &sc.runs[m]
	if i >= r.start && i < r.end {
		return r.end
	}
	*r = tokenRun{start: i, end: span(sc.s, i, runMask[m]), notMixedFrom: -1}
	return r.end
}

// prefixed reports whether sc.s[p:] starts with at least min bytes of class
// m holding at least two of lower, upper and digit.
func (sc *scanner) prefixed(p, m, min int) bool {
	j := sc.span(p, m)
	if j-p < min {
		return false
	}
	r := &sc.runs[m]
	if r.notMixedFrom >= 0 && p >= r.notMixedFrom {
		return false
	}
	if mixed(sc.s[p:j]) {
		return true
	}
	r.notMixedFrom = p
	return false
}

// wordTrigger marks the letters wordRule has matchers for.
var wordTrigger = func() (t [256]bool) {
	for _, c := range "ABSbeghnrswxy" {
		t[c] = true
	}
	return t
}()

// wordRule runs the matchers keyed by the first letter of a word starting at
// sc.s[i].
func (sc *scanner) wordRule(i int) Kind {
	t := sc.s[i:]
	switch t[0] {
	case 'A':
		if strings.HasPrefix(t, "AKIA") || strings.HasPrefix(t, "ASIA") {
			if awsAccessKey(t) {
				return KindAWSAccessKey
			}
		} else if strings.HasPrefix(t, "AIza") {
			if sc.span(i+4, runB64URL) == i+4+35 {
				return KindGCPAPIKey
			}
		}
	case 'B', 'b':
		if hasPrefixFold(t, "bearer") && len(t) > 6 && class[t[6]]&cSpace != 0 {
			if bearerCredential(credential(t, 6)) {
				return KindBearerToken
			}
		} else if hasPrefixFold(t, "basic") && len(t) > 5 && class[t[5]]&cSpace != 0 {
			if basicCredential(credential(t, 5)) {
				return KindBasicAuth
			}
		}
	case 'S':
		if strings.HasPrefix(t, "SG.") {
			j := sc.span(i+3, runB64URL)
			if j-(i+3) >= 16 && j < len(sc.s) && sc.s[j] == '.' && sc.span(j+1, runPart2)-(j+1) >= 16 {
				return KindSendGridKey
			}
		}
	case 'e':
		if strings.HasPrefix(t, "eyJ") && sc.jwt(i) {
			return KindJWT
		}
	case 'g':
		if len(t) > 4 && t[1] == 'h' && t[3] == '_' && strings.IndexByte("pousr", t[2]) >= 0 {
			if sc.prefixed(i+4, runAlnum, 30) {
				return KindGitHubToken
			}
		} else if strings.HasPrefix(t, "github_pat_") {
			if sc.prefixed(i+11, runB64URL, 30) {
				return KindGitHubToken
			}
		} else if strings.HasPrefix(t, "glpat-") {
			if sc.prefixed(i+6, runB64URL, 20) {
				return KindGitLabToken
			}
		}
	case 'h':
		if strings.HasPrefix(t, "hooks.slack.com/services/") && sc.span(i+25, runTok)-(i+25) >= 8 {
			return KindSlackWebhook
		}
	case 'n':
		if strings.HasPrefix(t, "npm_") && sc.prefixed(i+4, runAlnum, 30) {
			return KindNPMToken
		}
	case 'r':
		if strings.HasPrefix(t, "rk_live_") || strings.HasPrefix(t, "rk_test_") {
			if sc.prefixed(i+8, runAlnum, 16) {
				return KindStripeKey
			}
		}
	case 's':
		switch {
		case strings.HasPrefix(t, "sk_live_") || strings.HasPrefix(t, "sk_test_"):
			if sc.prefixed(i+8, runAlnum, 16) {
				return KindStripeKey
			}
		case strings.HasPrefix(t, "sk-ant-"):
			if sc.prefixed(i+7, runB64URL, 20) {
				return KindAnthropicKey
			}
		case strings.HasPrefix(t, "sk-"):
			if sc.prefixed(i+3, runB64URL, 20) {
				return KindOpenAIKey
			}
		}
	case 'w':
		if strings.HasPrefix(t, "whsec_") && sc.prefixed(i+6, runTok, 24) {
			return KindStripeKey
		}
	case 'x':
		if len(t) > 5 && strings.HasPrefix(t, "xox") && t[4] == '-' && strings.IndexByte("abprse", t[3]) >= 0 ||
			strings.HasPrefix(t, "xapp-") {
			if sc.prefixed(i+5, runB64URL, 10) {
				return KindSlackToken
			}
		}
	case 'y':
		if strings.HasPrefix(t, "ya29.") && sc.prefixed(i+5, runB64URL, 20) {
			return KindGoogleOAuthToken
		}
	}
	return ""
}

// tokenKind reports the kind of a provider token, JWT or PEM key starting
// at the beginning of v ("" when v does not start with one).
func tokenKind(v string) Kind {
	if v == "" {
		return ""
	}
	if class[v[0]]&cAlpha != 0 {
		sc := scanner{s: v}
		return sc.wordRule(0)
	}
	if strings.HasPrefix(v, "-----BEGIN ") && pemRule(v[len("-----BEGIN "):]) {
		return KindPEMPrivateKey
	}
	return ""
}

// jwt matches three base64url parts "eyJ….<payload>.<signature>" at
// sc.s[i]. The payload must be JSON ("eyJ") or the signature at least 16
// bytes.
func (sc *scanner) jwt(i int) bool {
	s := sc.s
	p1 := sc.span(i, runB64URL)
	if p1-i < 10 || p1 >= len(s) || s[p1] != '.' {
		return false
	}
	p2 := sc.span(p1+1, runPart2)
	if p2-(p1+1) < 4 || p2 >= len(s) || s[p2] != '.' {
		return false
	}
	return strings.HasPrefix(s[p1+1:], "eyJ") || sc.span(p2+1, runPart3)-(p2+1) >= 16
}

// awsAccessKey matches AKIA/ASIA followed by exactly 16 [A-Z0-9] and a word
// end. ASIA (temporary keys) must hold a digit so that words such as
// "ASIAPACIFICSOUTHEAST" are left alone.
func awsAccessKey(t string) bool {
	if len(t) < 20 {
		return false
	}
	digit := false
	for i := 4; i < 20; i++ {
		cl := class[t[i]]
		if cl&(cUpper|cDigit) == 0 {
			return false
		}
		if cl&cDigit != 0 {
			digit = true
		}
	}
	if len(t) > 20 && class[t[20]]&cAlnum != 0 {
		return false
	}
	return t[1] == 'K' || digit
}

// pemRule reports whether the label after "-----BEGIN " names a private key
// ("RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY",
// "PGP PRIVATE KEY BLOCK", ...). A header cut short is still a match.
func pemRule(label string) bool {
	if len(label) > 64 {
		label = label[:64]
	}
	if j := strings.Index(label, "-----"); j >= 0 {
		label = label[:j]
	}
	return strings.Contains(label, "PRIVATE KEY")
}

// credential returns the credential after a scheme word that ends at t[p]:
// spaces, then a run of token68 bytes [A-Za-z0-9._~+/=-].
func credential(t string, p int) string {
	i := skipSpaces(t, p)
	j := i
	for j < len(t) && (class[t[j]]&cTok != 0 || t[j] == '.' || t[j] == '~') {
		j++
	}
	return t[i:j]
}

// bearerCredential tells a bearer token from prose ("the bearer of bad
// news"): at least 8 bytes with a digit or one of + / = _ ~, or at least 20
// bytes mixing two of lower, upper and digit.
func bearerCredential(c string) bool {
	if len(c) < 8 || IsMarker(c) {
		return false
	}
	var seen uint8
	sym := false
	for i := 0; i < len(c); i++ {
		seen |= class[c[i]] & cAlnum
		switch c[i] {
		case '+', '/', '=', '_', '~':
			sym = true
		}
	}
	if seen&cAlpha != 0 && (seen&cDigit != 0 || sym) {
		return true
	}
	return len(c) >= 20 && mixed(c)
}

// basicCredential reports whether c is base64 (standard or URL alphabet) of
// at least 8 bytes whose decoding holds "user:password" (a ':'). It decodes
// on the fly without allocating.
func basicCredential(c string) bool {
	if len(c) < 8 {
		return false
	}
	var acc uint32
	bits := 0
	for i := 0; i < len(c); i++ {
		var v byte
		switch b := c[i]; {
		case b >= 'A' && b <= 'Z':
			v = b - 'A'
		case b >= 'a' && b <= 'z':
			v = b - 'a' + 26
		case b >= '0' && b <= '9':
			v = b - '0' + 52
		case b == '+' || b == '-':
			v = 62
		case b == '/' || b == '_':
			v = 63
		case b == '=':
			return false
		default:
			return false
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			if byte(acc>>uint(bits)) == ':' {
				return true
			}
		}
	}
	return false
}

// urlRule matches "scheme://user:password@host" at the ':' of "://".
func urlRule(s string, i int) Kind {
	if i == 0 || class[s[i-1]]&cAlnum == 0 {
		return ""
	}
	a := i + 3
	e := a
	for e < len(s) {
		c := s[e]
		if c == '/' || c == '?' || c == '#' || c == '\\' || class[c]&cSpace != 0 || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`' {
			break
		}
		e++
	}
	auth := s[a:e]
	at := strings.LastIndexByte(auth, '@')
	if at < 0 {
		return ""
	}
	user := auth[:at]
	colon := strings.IndexByte(user, ':')
	if colon < 0 || colon == len(user)-1 || IsMarker(user[colon+1:]) {
		return ""
	}
	return KindURLPassword
}

// assignRule matches "<secret key> = value" and "<secret key>: value" in
// free text (query strings, headers, config lines, JSON inside a string)
// at the '=' or ':' s[i]. With '=' or a quoted key any non-empty value is a
// secret; with an unquoted ':' (which prose uses too: "reason: token:
// expired") the value must look like a credential.
func assignRule(s string, i int) Kind {
	op := s[i]
	j := i
	for j > 0 && i-j < 4 && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	quotedKey := false
	if j > 0 && (s[j-1] == '"' || s[j-1] == '\'') {
		quotedKey = true
		j--
	}
	k := j
	letters := 0
	for k > 0 && j-k < 64 && class[s[k-1]]&cKey != 0 {
		k--
		if class[s[k]]&cAlpha != 0 {
			letters++
		}
	}
	if letters < 2 || !IsSecretKey(s[k:j]) {
		return ""
	}
	key := s[k:j]

	// The value is read up to maxValue bytes: enough to judge it, and it
	// keeps detect linear when many assignments share one long value.
	v := skipSpaces(s, i+1)
	var val string
	if v < len(s) && (s[v] == '"' || s[v] == '\'') {
		q := s[v]
		rest := s[v+1 : min(len(s), v+1+maxValue)]
		if end := strings.IndexByte(rest, q); end >= 0 {
			rest = rest[:end]
		}
		val = rest
		quotedKey = true // a quoted value is structured data, not prose
	} else {
		e := v
		for e < len(s) && e-v < maxValue && class[s[e]]&cValEnd == 0 {
			e++
		}
		val = s[v:e]
	}
	if val == "" || strings.HasPrefix(val, markerPrefix) {
		return ""
	}
	// "Authorization: Bearer x", "auth=Basic x", "Authorization: token x"
	if class[val[0]]&cAlpha != 0 {
		w := span(val, 0, cAlpha)
		if w < len(val) && class[val[w]]&cSpace != 0 {
			switch scheme := val[:w]; {
			case hasPrefixFold(scheme, "bearer") && w == 6:
				if c := credential(val, w); c != "" && !IsMarker(c) {
					return KindBearerToken
				}
				return ""
			case hasPrefixFold(scheme, "basic") && w == 5:
				if c := credential(val, w); c != "" && !IsMarker(c) {
					return KindBasicAuth
				}
				return ""
			}
		}
	}
	if kk := tokenKind(val); kk != "" {
		return kk
	}
	if awsSecretShape(val) && containsFold(key, "aws") {
		return KindAWSSecretKey
	}
	if op == '=' || quotedKey || credentialLike(val) {
		return KindSecretKey
	}
	return ""
}

// credentialLike is the test for an unquoted "key: value": at least 4 bytes
// with a digit, a symbol, or a capital after the first byte.
func credentialLike(v string) bool {
	if len(v) < 4 {
		return false
	}
	for i := 0; i < len(v); i++ {
		cl := class[v[i]]
		if cl&(cDigit) != 0 || cl&cAlnum == 0 || i > 0 && cl&cUpper != 0 {
			return true
		}
	}
	return false
}

// awsSecretShape reports whether v is exactly 40 bytes of [A-Za-z0-9+/]
// mixing classes (the shape of an AWS secret access key).
func awsSecretShape(v string) bool {
	if len(v) != 40 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if class[v[i]]&cAlnum == 0 && v[i] != '+' && v[i] != '/' {
			return false
		}
	}
	return mixed(v)
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if hasPrefixFold(s[i:], sub) {
			return true
		}
	}
	return false
}

// highEntropy decides whether a run of [A-Za-z0-9+/=_-] of at least
// minEntropyRun bytes is a random-looking token. Segments between the
// separators + / = _ - that are identifiers or words (all hex of 4+ bytes:
// digests, git SHAs, UUID groups, numbers; single-case words with vowels;
// 26-byte ULIDs) are set aside; the rest
// must hold at least minEntropyCounted letters and digits and:
//   - at most len/8+2 separators (paths and kebab identifiers have more);
//   - at least two of lower, upper and digit;
//   - class changes between neighbours at least 40% as often as a random
//     string of the same class mix would have them (words and numbers come
//     in long single-class stretches);
//   - fewer than two thirds of the capitals starting a lowercase word
//     (camelCase identifiers);
//   - Shannon entropy of at least min(4.0, 0.75·log2(n)) bits per byte;
//   - not an SRI digest ("sha256-…").
func highEntropy(r string) bool {
	if len(r) > maxEntropyScan {
		r = r[:maxEntropyScan]
	}
	if r[0] == 's' && (strings.HasPrefix(r, "sha1-") || strings.HasPrefix(r, "sha256-") || strings.HasPrefix(r, "sha384-") || strings.HasPrefix(r, "sha512-")) {
		return false
	}
	var lower, upper, digit, seps, trans, camel int
	for i := 0; i < len(r); {
		if class[r[i]]&cAlnum == 0 {
			seps++
			i++
			continue
		}
		j := span(r, i, cAlnum)
		seg := r[i:j]
		i = j
		if idSegment(seg) {
			continue
		}
		var prev uint8
		for k := 0; k < len(seg); k++ {
			cl := class[seg[k]] & cAlnum
			switch cl {
			case cLower:
				lower++
			case cUpper:
				upper++
				if k+2 < len(seg) && class[seg[k+1]]&cLower != 0 && class[seg[k+2]]&cLower != 0 {
					camel++
				}
			default:
				digit++
			}
			if k > 0 && cl != prev {
				trans++
			}
			prev = cl
		}
	}
	total := lower + upper + digit
	if total < minEntropyCounted || seps > len(r)/8+2 {
		return false
	}
	classes := 0
	for _, c := range [...]int{lower, upper, digit} {
		if c > 0 {
			classes++
		}
	}
	if classes < 2 || camel >= 2 && camel*3 >= upper*2 {
		return false
	}
	// A random string changes class between neighbours with probability
	// 1-Σp² (p: the share of each class); words and numbers far less often.
	t := float64(total)
	pl, pu, pd := float64(lower)/t, float64(upper)/t, float64(digit)/t
	if float64(trans) < 0.4*(1-pl*pl-pu*pu-pd*pd)*(t-1) {
		return false
	}
	// Only a candidate pays for the histogram.
	var counts [128]uint16
	for i := 0; i < len(r); {
		if class[r[i]]&cAlnum == 0 {
			i++
			continue
		}
		j := span(r, i, cAlnum)
		seg := r[i:j]
		i = j
		if !idSegment(seg) {
			for k := 0; k < len(seg); k++ {
				counts[seg[k]]++
			}
		}
	}
	return entropy(&counts, total) >= math.Min(4.0, 0.75*math.Log2(t))
}

// idSegment reports whether seg is an identifier or a word: all hex of at
// least 4 bytes (a number, digest, git SHA, UUID group), a word of 4+
// letters in one case with a normal share of vowels ("runtime", "PROD"), or
// a ULID (26 Crockford base32 bytes in one case).
func idSegment(seg string) bool {
	if len(seg) >= 4 {
		hex := true
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				hex = false
				break
			}
		}
		if hex {
			return true
		}
	}
	if len(seg) >= 4 && wordSegment(seg) {
		return true
	}
	if len(seg) == 26 && seg[0] >= '0' && seg[0] <= '7' {
		var seen uint8
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			seen |= class[c]
			switch c {
			case 'I', 'L', 'O', 'U', 'i', 'l', 'o', 'u':
				return false
			}
		}
		return seen&cAlpha != cAlpha
	}
	return false
}

// wordSegment reports whether seg is a word: letters of one case only, at
// least a quarter of them vowels (random letters have about a fifth).
func wordSegment(seg string) bool {
	var seen uint8
	vowels := 0
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		seen |= class[c]
		switch c | 0x20 {
		case 'a', 'e', 'i', 'o', 'u':
			vowels++
		}
	}
	if seen&cDigit != 0 || seen&cAlpha == cAlpha {
		return false
	}
	return vowels*4 >= len(seg)
}

// entropy is the Shannon entropy in bits per byte of the counted bytes.
func entropy(counts *[128]uint16, total int) float64 {
	t := float64(total)
	h := 0.0
	for _, c := range counts {
		if c != 0 {
			p := float64(c) / t
			h -= p * math.Log2(p)
		}
	}
	return h
}
