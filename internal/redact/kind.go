package redact

import "strings"

// Kind names why a value was redacted. It is used as a Prometheus label and
// inside the marker "[REDACTED:<kind>]". The set is small and fixed (see
// Kinds); every Kind is lowercase snake_case.
type Kind string

// The kinds this package produces. KindSecretKey is the only key-based kind;
// all others come from the shape of a value.
const (
	KindSecretKey        Kind = "secret_key"         // value under (or assigned to) a key that names a secret
	KindBearerToken      Kind = "bearer_token"       // "Bearer <token>"
	KindBasicAuth        Kind = "basic_auth"         // "Basic <base64 user:pass>"
	KindJWT              Kind = "jwt"                // eyJ….….…
	KindPEMPrivateKey    Kind = "pem_private_key"    // -----BEGIN … PRIVATE KEY-----
	KindAWSAccessKey     Kind = "aws_access_key"     // AKIA/ASIA + 16
	KindAWSSecretKey     Kind = "aws_secret_key"     // 40-char base64 next to an aws hint
	KindGCPAPIKey        Kind = "gcp_api_key"        // AIza + 35
	KindGoogleOAuthToken Kind = "google_oauth_token" // ya29.…
	KindGitHubToken      Kind = "github_token"       // ghp_ gho_ ghu_ ghs_ ghr_ github_pat_
	KindGitLabToken      Kind = "gitlab_token"       // glpat-
	KindSlackToken       Kind = "slack_token"        // xoxb- xoxp- xoxa- xoxr- xoxs- xoxe- xapp-
	KindSlackWebhook     Kind = "slack_webhook"      // hooks.slack.com/services/…
	KindStripeKey        Kind = "stripe_key"         // sk_live_ sk_test_ rk_live_ rk_test_ whsec_
	KindOpenAIKey        Kind = "openai_key"         // sk-… sk-proj-…
	KindAnthropicKey     Kind = "anthropic_key"      // sk-ant-…
	KindNPMToken         Kind = "npm_token"          // npm_…
	KindSendGridKey      Kind = "sendgrid_key"       // SG.….…
	KindURLPassword      Kind = "url_password"       // scheme://user:pass@host
	KindHighEntropy      Kind = "high_entropy"       // long random-looking token
)

// allKinds is the fixed, ordered set returned by Kinds.
var allKinds = [...]Kind{
	KindSecretKey, KindBearerToken, KindBasicAuth, KindJWT, KindPEMPrivateKey,
	KindAWSAccessKey, KindAWSSecretKey, KindGCPAPIKey, KindGoogleOAuthToken,
	KindGitHubToken, KindGitLabToken, KindSlackToken, KindSlackWebhook,
	KindStripeKey, KindOpenAIKey, KindAnthropicKey, KindNPMToken,
	KindSendGridKey, KindURLPassword, KindHighEntropy,
}

// markers holds the precomputed marker of every known kind so that Marker
// does not allocate.
var markers = func() map[Kind]string {
	m := make(map[Kind]string, len(allKinds))
	for _, k := range allKinds {
		m[k] = markerPrefix + string(k) + "]"
	}
	return m
}()

const markerPrefix = "[REDACTED:"

// Marker returns "[REDACTED:<kind>]". For the kinds listed by Kinds it
// returns a preallocated string.
func Marker(k Kind) string {
	if m, ok := markers[k]; ok {
		return m
	}
	return markerPrefix + string(k) + "]"
}

// Kinds returns every Kind this package can produce, in a fixed order, for
// pre-registering metric labels. The caller owns the returned slice.
func Kinds() []Kind {
	out := make([]Kind, len(allKinds))
	copy(out, allKinds[:])
	return out
}

// IsMarker reports whether s is exactly a redaction marker
// "[REDACTED:<kind>]" (any lowercase snake_case kind). Markers are never
// redacted again.
func IsMarker(s string) bool {
	if len(s) < len(markerPrefix)+2 || !strings.HasPrefix(s, markerPrefix) || s[len(s)-1] != ']' {
		return false
	}
	for i := len(markerPrefix); i < len(s)-1; i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
