package redact

import (
	"encoding/base64"
	"strings"
)

// Every secret in these tests is built at run time from parts and a
// deterministic generator, so the repository holds no literal token for a
// secret scanner to flag.

const (
	alphaB62    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	alphaB64URL = alphaB62 + "-_"
	alphaB64    = alphaB62 + "+/"
	alphaUpDig  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

// fake returns n bytes drawn from alphabet by a fixed generator seeded with
// seed (splitmix64), so each test value is stable across runs.
func fake(seed uint64, n int, alphabet string) string {
	var b strings.Builder
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := 0; i < n; i++ {
		x += 0x9E3779B97F4A7C15
		z := x
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		z ^= z >> 31
		b.WriteByte(alphabet[z%uint64(len(alphabet))])
	}
	return b.String()
}

// secretShape is one secret as it may reach the journal: value is what a
// writer sends, needle the part that must never survive, kind the expected
// kind.
type secretShape struct {
	name   string
	value  string
	needle string
	kind   Kind
}

func jwtToken(seed uint64) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(`{"sub":"svc-`+fake(seed, 6, alphaB62)+`","exp":1735689600}`)) + "." +
		fake(seed+1, 43, alphaB64URL)
}

func pem(label string, seed uint64) (whole, body string) {
	body = fake(seed, 64, alphaB64)
	dash := strings.Repeat("-", 5)
	return dash + "BEGIN " + label + dash + "\n" + body + "\n" + dash + "END " + label + dash, body
}

func secretShapes() []secretShape {
	var s []secretShape
	add := func(name, value, needle string, kind Kind) {
		s = append(s, secretShape{name, value, needle, kind})
	}
	tok := fake(1, 40, alphaB62)
	add("an Authorization header with a bearer token", "Authorization: Bearer "+tok, tok, KindBearerToken)
	tok = fake(2, 32, alphaB64URL)
	add("a bearer token inside a curl command", "curl -H 'X-Trace: 1' -H \"Bearer "+tok+"\" https://api.example.com", tok, KindBearerToken)
	cred := base64.StdEncoding.EncodeToString([]byte("svc-user:" + fake(3, 16, alphaB62)))
	add("an Authorization header with basic credentials", "Authorization: Basic "+cred, cred, KindBasicAuth)
	cred = base64.StdEncoding.EncodeToString([]byte("deploy:" + fake(4, 12, alphaB62)))
	add("basic credentials in prose", "retrying with Basic "+cred+" after 401", cred, KindBasicAuth)
	j := jwtToken(5)
	add("a bare JWT", j, j, KindJWT)
	j = jwtToken(6)
	add("a JWT inside a sentence", "session expired for "+j+" at 12:00", j, KindJWT)
	for i, label := range []string{"RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY"} {
		w, body := pem(label, uint64(10+i))
		add("a PEM "+strings.ToLower(label), w, body, KindPEMPrivateKey)
	}
	id := "AK" + "IA" + fake(20, 16, alphaUpDig[:26]+"234567")
	add("an AWS access key id", id, id, KindAWSAccessKey)
	id = "AS" + "IA" + fake(21, 15, alphaUpDig[:26]) + "7"
	add("an AWS temporary access key id in text", "assumed role with "+id+", expires soon", id, KindAWSAccessKey)
	sec := fake(22, 40, alphaB64)
	add("an AWS secret key assigned to an aws key", "aws_secret_access_key="+sec, sec, KindAWSSecretKey)
	sec = fake(23, 40, alphaB64)
	add("a standalone AWS-style secret key", sec, sec, KindHighEntropy)
	k := "AI" + "za" + fake(24, 35, alphaB64URL)
	add("a GCP API key", k, k, KindGCPAPIKey)
	k = "ya" + "29." + fake(25, 60, alphaB64URL)
	add("a Google OAuth access token", k, k, KindGoogleOAuthToken)
	for i, p := range []string{"ghp_", "gho_", "ghs_"} {
		k = "g" + p[1:] + fake(uint64(30+i), 36, alphaB62)
		add("a GitHub token with prefix "+p, k, k, KindGitHubToken)
	}
	k = "github" + "_pat_" + fake(33, 22, alphaB62) + "_" + fake(34, 59, alphaB62)
	add("a GitHub fine-grained token", k, k, KindGitHubToken)
	k = "gl" + "pat-" + fake(35, 20, alphaB64URL)
	add("a GitLab personal access token", k, k, KindGitLabToken)
	k = "xo" + "xb-" + fake(36, 12, "0123456789") + "-" + fake(37, 13, "0123456789") + "-" + fake(38, 24, alphaB62)
	add("a Slack bot token", k, k, KindSlackToken)
	k = "xa" + "pp-1-" + fake(39, 11, alphaUpDig) + "-" + fake(40, 13, "0123456789") + "-" + fake(41, 64, "0123456789abcdef")
	add("a Slack app token", k, k, KindSlackToken)
	k = "T" + fake(42, 8, alphaUpDig) + "/B" + fake(43, 8, alphaUpDig) + "/" + fake(44, 24, alphaB62)
	add("a Slack incoming webhook URL", "https://hooks.slack.com/services/"+k, k, KindSlackWebhook)
	k = "sk" + "_live_" + fake(45, 24, alphaB62)
	add("a Stripe live secret key", k, k, KindStripeKey)
	k = "rk" + "_test_" + fake(46, 24, alphaB62)
	add("a Stripe restricted test key", k, k, KindStripeKey)
	k = "wh" + "sec_" + fake(47, 32, alphaB62)
	add("a Stripe webhook secret", k, k, KindStripeKey)
	k = "sk" + "-proj-" + fake(48, 48, alphaB64URL)
	add("an OpenAI project key", k, k, KindOpenAIKey)
	k = "sk" + "-" + fake(49, 48, alphaB62)
	add("an OpenAI legacy key", k, k, KindOpenAIKey)
	k = "sk" + "-ant-api03-" + fake(50, 95, alphaB64URL)
	add("an Anthropic key", k, k, KindAnthropicKey)
	k = "np" + "m_" + fake(51, 36, alphaB62)
	add("an npm token", k, k, KindNPMToken)
	k = "S" + "G." + fake(52, 22, alphaB64URL) + "." + fake(53, 43, alphaB64URL)
	add("a SendGrid key", k, k, KindSendGridKey)
	pw := fake(54, 14, alphaB62)
	add("a database URL with a password", "postgres://journal:"+pw+"@db.internal:5432/state", pw, KindURLPassword)
	pw = fake(55, 10, alphaB62)
	add("a Redis URL with a password inside a log line", "dial redis://:"+pw+"@cache:6379/0 failed: timeout", pw, KindURLPassword)
	k = fake(56, 48, alphaB62)
	add("a long random token", "cursor "+k, k, KindHighEntropy)
	k = fake(57, 16, alphaB62)
	add("an access token in a query string", "https://api.example.com/cb?state=ok&access_token="+k+"&x=1", k, KindSecretKey)
	k = fake(58, 10, alphaB62) + "!9"
	add("a password inside JSON in a string", `{"user":"svc","password":"`+k+`"}`, k, KindSecretKey)
	k = fake(59, 32, "0123456789abcdef")
	add("an API key header", "X-Api-Key: "+k, k, KindSecretKey)
	k = fake(60, 20, alphaB62)
	add("a Cookie header", "Cookie: sid="+k+"; theme=dark", k, KindSecretKey)
	k = "hunter" + "2"
	add("a password assignment in a config line", "db.password = "+k, k, KindSecretKey)
	return s
}
