package redact

import "slices"

// Rule documents one detection rule of String (and of Metadata, which
// applies String to every key and string value). The matching itself is
// hand-written in redact.go; this table is what an operator reads, and a
// test keeps it in step with Kinds.
type Rule struct {
	Name        string // stable rule name
	Kind        Kind   // the kind reported, as in "[REDACTED:<kind>]"
	Description string // what is matched
}

var rules = []Rule{
	{"secret_key_name", KindSecretKey, "metadata value under a key that names a secret (IsSecretKey); in free text, a value assigned to such a key: key=value (any value), \"key\":\"value\" (quoted), key: value (unquoted ':' only when the value has a digit, a symbol or an inner capital, so prose like \"reason: token: expired\" stays)"},
	{"bearer", KindBearerToken, "Bearer <token> (any case; token68 of 8+ bytes with a digit or + / = _ ~, or 20+ bytes of mixed classes), also after Authorization: or auth="},
	{"basic", KindBasicAuth, "Basic <base64> whose decoding holds user:password, or any credential after Authorization: Basic"},
	{"jwt", KindJWT, "eyJ<base64url 7+>.<base64url 4+>.<base64url> with a JSON payload (eyJ…) or a 16+ byte signature"},
	{"pem_private_key", KindPEMPrivateKey, "-----BEGIN <label>----- whose label contains PRIVATE KEY (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP … BLOCK); a header cut short still matches"},
	{"aws_access_key_id", KindAWSAccessKey, "AKIA or ASIA + exactly 16 [A-Z0-9] at a word end (ASIA needs a digit)"},
	{"aws_secret_access_key", KindAWSSecretKey, "40 bytes of mixed [A-Za-z0-9+/] assigned to a key containing \"aws\"; standalone it is caught by high_entropy"},
	{"gcp_api_key", KindGCPAPIKey, "AIza + exactly 35 [A-Za-z0-9_-]"},
	{"google_oauth_token", KindGoogleOAuthToken, "ya29. + 20+ [A-Za-z0-9_-]"},
	{"github_token", KindGitHubToken, "ghp_ gho_ ghu_ ghs_ ghr_ + 30+ [A-Za-z0-9]; github_pat_ + 30+ [A-Za-z0-9_]"},
	{"gitlab_token", KindGitLabToken, "glpat- + 20+ [A-Za-z0-9_-]"},
	{"slack_token", KindSlackToken, "xoxb- xoxp- xoxa- xoxr- xoxs- xoxe- xapp- + 10+ [A-Za-z0-9-] with a digit"},
	{"slack_webhook", KindSlackWebhook, "hooks.slack.com/services/ + 8+ path bytes"},
	{"stripe_key", KindStripeKey, "sk_live_ sk_test_ rk_live_ rk_test_ + 16+ [A-Za-z0-9]; whsec_ + 24+"},
	{"anthropic_key", KindAnthropicKey, "sk-ant- + 20+ [A-Za-z0-9_-]"},
	{"openai_key", KindOpenAIKey, "sk- (sk-proj-, sk-svcacct-, legacy) + 20+ [A-Za-z0-9_-]"},
	{"npm_token", KindNPMToken, "npm_ + 30+ [A-Za-z0-9]"},
	{"sendgrid_key", KindSendGridKey, "SG.<16+ base64url>.<16+ base64url>"},
	{"url_password", KindURLPassword, "scheme://user:password@host with a non-empty password (last @ of the authority)"},
	{"high_entropy", KindHighEntropy, "a run of 32+ [A-Za-z0-9+/=_-] that looks random once hex and ULID segments are set aside: 24+ letters/digits of at least two classes, few separators, frequent class changes, not camelCase, Shannon entropy >= min(4, 0.75*log2 n) bits; UUIDs, ULIDs, hex digests and git SHAs never match"},
}

// Rules returns the detection rules in the order a tie at one position is
// resolved. Provider prefixes (ghp_, sk-…, AKIA …) and the other token rules
// also require the match to start a word: the byte before is not a letter
// or digit. The caller owns the returned slice.
func Rules() []Rule { return slices.Clone(rules) }

// KeyWord documents one word of the IsSecretKey vocabulary.
type KeyWord struct {
	Word string // lowercase word part
	Role string // how the word takes part in a match
}

var roleNames = map[wordRole]string{
	roleSecret:            "secret",
	roleToken:             "secret",
	roleLastOnly:          "secret when it is the last part",
	rolePairFirst:         "secret when followed by key or keys",
	rolePairKey:           "second word of <word>_key",
	roleBenignAfter:       "cancels a match it follows",
	roleBenignBefore:      "cancels a match it precedes",
	roleBenignEither:      "cancels a match it follows or precedes",
	roleBenignBeforeToken: "cancels a following token",
}

// KeyWords returns the IsSecretKey vocabulary sorted by word.
func KeyWords() []KeyWord {
	out := make([]KeyWord, 0, len(keyWords))
	for w, r := range keyWords {
		out = append(out, KeyWord{Word: w, Role: roleNames[r]})
	}
	slices.SortFunc(out, func(a, b KeyWord) int {
		switch {
		case a.Word < b.Word:
			return -1
		case a.Word > b.Word:
			return 1
		}
		return 0
	})
	return out
}
