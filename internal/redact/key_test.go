package redact

import "testing"

func TestIsSecretKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		want bool
	}{
		{"a plain secret word is a secret key", "token", true},
		{"an upper-case env var name is a secret key", "GITHUB_TOKEN", true},
		{"a camelCase api key is a secret key", "apiKey", true},
		{"a header name with an api key is a secret key", "X-Api-Key", true},
		{"a dotted password path is a secret key", "db.password", true},
		{"an acronym before Key splits into words", "APIKey", true},
		{"a single-word apikey is a secret key", "APIKEY", true},
		{"passwd is a secret key", "passwd", true},
		{"pwd is a secret key", "smtp_pwd", true},
		{"credentials is a secret key", "aws_credentials", true},
		{"authorization is a secret key", "Authorization", true},
		{"auth_token is a secret key", "auth_token", true},
		{"private_key is a secret key", "private_key", true},
		{"a camelCase private key with a suffix is a secret key", "privateKeyPem", true},
		{"cookie is a secret key", "cookie", true},
		{"set_cookie is a secret key", "Set-Cookie", true},
		{"session_key is a secret key", "session_key", true},
		{"approval_secret is a secret key", "approval_secret", true},
		{"access_key is a secret key", "access_key", true},
		{"client_secret is a secret key", "clientSecret", true},
		{"refresh_token is a secret key", "refresh_token", true},
		{"signature is a secret key", "webhook_signature", true},
		{"auth as the last word is a secret key", "basicAuth", true},
		{"auth alone is a secret key", "auth", true},
		{"a password with a digit suffix is a secret key", "password2", true},
		{"a password hash is a secret key", "password_hash", true},
		{"a key with spaces is split on them", "Session Token", true},
		{"tokenizer is not a secret key", "tokenizer", false},
		{"passage is not a secret key", "passage", false},
		{"secretary is not a secret key", "secretary", false},
		{"monkey is not a secret key", "monkey", false},
		{"a plain key is not a secret key", "key", false},
		{"an idempotency key is not a secret key", "idempotency_key", false},
		{"a public key is not a secret key", "public_key", false},
		{"a session id is not a secret key", "session_id", false},
		{"a token count is not a secret key", "token_count", false},
		{"max tokens is not a secret key", "max_tokens", false},
		{"a camelCase prompt token count is not a secret key", "promptTokenCount", false},
		{"an output token is a usage field", "output_token", false},
		{"a secret name is not a secret key", "secret_name", false},
		{"a password policy is not a secret key", "password_policy", false},
		{"a token expiry is not a secret key", "token_expires_at", false},
		{"an api key id is not a secret key", "api_key_id", false},
		{"has_password is not a secret key", "has_password", false},
		{"an auth mode is not a secret key", "auth_mode", false},
		{"oauth is not a secret key", "oauth", false},
		{"a surface id is not a secret key", "surface", false},
		{"an empty key is not a secret key", "", false},
		{"separators only are not a secret key", "_-.", false},
		{"a long word part is not looked up", "passwordpasswordpassword", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsSecretKey(tc.key); got != tc.want {
				t.Fatalf("IsSecretKey(%q) = %v, want %v", tc.key, got, tc.want)
			}
		})
	}
}

func TestIsSecretKeyDoesNotAllocate(t *testing.T) {
	for _, k := range []string{"GITHUB_TOKEN", "X-Api-Key", "surface", "promptTokenCount", "a.very.long.dotted.key.name"} {
		if n := testing.AllocsPerRun(100, func() { IsSecretKey(k) }); n != 0 {
			t.Errorf("IsSecretKey(%q) allocates %v times", k, n)
		}
	}
}

func TestSecretLetterSetsCoverEveryMatchingWord(t *testing.T) {
	for w, r := range keyWords {
		if r == roleSecret || r == roleToken || r == roleLastOnly || r == rolePairKey {
			if !mayNameSecret(w) {
				t.Errorf("the prefilter rejects %q", w)
			}
		}
	}
	if len(secretLetterSets) > 20 {
		t.Errorf("%d letter sets: the prefilter is not minimized", len(secretLetterSets))
	}
}
