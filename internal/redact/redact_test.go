package redact

import (
	"strings"
	"testing"
)

func TestStringRedactsSecretShapes(t *testing.T) {
	shapes := secretShapes()
	if len(shapes) < 25 {
		t.Fatalf("only %d secret shapes", len(shapes))
	}
	for _, tc := range shapes {
		t.Run(tc.name+" is redacted as "+string(tc.kind), func(t *testing.T) {
			out, kind, redacted := String(tc.value)
			if !redacted || kind != tc.kind {
				t.Fatalf("String(%q) = %q, %q, %v; want kind %q", tc.value, out, kind, redacted, tc.kind)
			}
			if strings.Contains(out, tc.needle) {
				t.Fatalf("output %q still holds the secret", out)
			}
			if out != Marker(tc.kind) {
				t.Fatalf("output %q, want the whole value replaced by %q", out, Marker(tc.kind))
			}
		})
	}
}

func TestStringKeepsIdentifiers(t *testing.T) {
	values := map[string]string{
		"a UUIDv4":                                "3f2b6c1e-8d4a-4f6b-9c2e-1a7b5d9e0f31",
		"a UUIDv7":                                "01890a5d-ac96-774b-bcce-b302099a8057",
		"an upper-case UUID":                      "550E8400-E29B-41D4-A716-446655440000",
		"a ULID":                                  "01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"a lower-case ULID":                       "01hzx3ndektsv4rrffq69g5fav",
		"a ULID with a type prefix":               "work_session_01HZX3NDEKTSV4RRFFQ69G5FAV",
		"two ULIDs joined":                        "01HZX3NDEKTSV4RRFFQ69G5FAV-01HZX3NDEKTSV4RRFFQ69G5FAW",
		"a short aggregate id":                    "ws-42",
		"a surface id":                            "runtime_work_session",
		"a storage path":                          ".tmp/runtime/work-sessions.json",
		"an absolute segment path":                "/var/lib/agentruntime/state-journal/segments/00000000000000000042.wal",
		"a sentence":                              "worker heartbeat missed; retrying in 5s",
		"a sentence about a bearer":               "The bearer of this note is approved.",
		"a sentence about basic auth":             "Basic auth is disabled for this surface",
		"prose with a secret word and a colon":    "reset password: done",
		"a status line about a token":             "reason: token: expired",
		"an RFC 3339 time":                        "2024-06-01T12:34:56.789Z",
		"an RFC 3339 time with offset":            "2024-06-01T12:34:56.123456+02:00",
		"a number":                                "12345678901234567890",
		"a decimal":                               "3.14159",
		"a git commit SHA":                        "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
		"a short git SHA":                         "4b825dc",
		"a sha256 digest":                         "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"an SRI digest":                           "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
		"an email":                                "alice.smith+journal@example.com",
		"a short word":                            "ok",
		"a URL without credentials":               "https://example.com/v1/changes?after=42&limit=100",
		"an ssh URL with a user only":             "ssh://git@github.com/agentruntime/statejournal.git",
		"a database URL without a password":       "postgres://journal@db.internal:5432/state",
		"a pod name":                              "runtime-dispatcher-worker-7d9f8b6c5d-x2k4p",
		"a camelCase identifier with digits":      "GetUserById2FromDatabaseAndCacheV3",
		"a product name with a year":              "MyServiceName2024ProductionCluster",
		"a token count assignment":                "token_count=42",
		"a max tokens assignment":                 "max_tokens=4096",
		"a traceparent":                           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"a semantic version":                      "v1.2.3-rc.1+build.5",
		"a word that merely starts like a region": "ASIAPACIFICSOUTHEAST",
		"a hyphenated word with sk":               "risk-assessment-v2",
		"a redaction marker":                      Marker(KindJWT),
		"the depth marker":                        DepthMarker,
		"a truncated string":                      "some long text" + TruncatedSuffix,
		"a short base64 value":                    "aGVsbG8=",
		"a snapshot hint":                         "runtime_health",
		"a Go duration":                           "1h2m3.5s",
		"a change type list":                      "created,updated,deleted,heartbeat",
		"a Windows path":                          `C:\Users\runtime\AppData\Local\journal\state.json`,
		"an S3 artifact ref":                      "s3://runtime-artifacts/runs/2024/06/01/run-42/output.tar.zst",
		"a key=value without a secret key":        "surface=runtime_leases change=expired",
		"an empty string":                         "",
	}
	for name, v := range values {
		t.Run(name+" stays readable", func(t *testing.T) {
			out, kind, redacted := String(v)
			if redacted || kind != "" || out != v {
				t.Fatalf("String(%q) = %q, %q, %v; want it unchanged", v, out, kind, redacted)
			}
		})
	}
}

func TestStringDoesNotAllocateWhenNothingIsRedacted(t *testing.T) {
	for _, v := range []string{"ws-42", ".tmp/runtime/work-sessions.json", "2024-06-01T12:34:56.789Z",
		"worker heartbeat missed; retrying in 5s", "3f2b6c1e-8d4a-4f6b-9c2e-1a7b5d9e0f31", "token_count=42",
		"GetUserById2FromDatabaseAndCacheV3"} {
		if n := testing.AllocsPerRun(100, func() { String(v) }); n != 0 {
			t.Errorf("String(%q) allocates %v times", v, n)
		}
	}
}

func TestMarkersAreNeverRedactedAgain(t *testing.T) {
	for _, k := range Kinds() {
		m := Marker(k)
		if !IsMarker(m) {
			t.Errorf("IsMarker(%q) = false", m)
		}
		if out, kind, redacted := String(m); redacted || out != m {
			t.Errorf("String(%q) = %q, %q; a marker must stay as it is", m, out, kind)
		}
		if n := testing.AllocsPerRun(10, func() { Marker(k) }); n != 0 {
			t.Errorf("Marker(%q) allocates", k)
		}
	}
}

func TestStringIsIdempotentOnEverySecretShape(t *testing.T) {
	for _, tc := range secretShapes() {
		once, _, _ := String(tc.value)
		twice, _, redacted := String(once)
		if twice != once || redacted {
			t.Errorf("%s: String(String(x)) = %q, want %q", tc.name, twice, once)
		}
	}
}

func TestRulesDocumentEveryKind(t *testing.T) {
	documented := map[Kind]bool{}
	for _, r := range Rules() {
		if r.Name == "" || r.Description == "" {
			t.Errorf("rule %+v is not documented", r)
		}
		documented[r.Kind] = true
	}
	kinds := Kinds()
	for _, k := range kinds {
		if !documented[k] {
			t.Errorf("kind %q has no rule", k)
		}
		if string(k) != strings.ToLower(string(k)) || strings.ContainsAny(string(k), " -") {
			t.Errorf("kind %q is not lowercase snake_case", k)
		}
	}
	if len(documented) != len(kinds) {
		t.Errorf("rules name %d kinds, Kinds returns %d", len(documented), len(kinds))
	}
	if len(KeyWords()) == 0 {
		t.Error("KeyWords is empty")
	}
}

func TestIsMarker(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"[REDACTED:jwt]", true},
		{"[REDACTED:secret_key]", true},
		{"[REDACTED:]", false},
		{"[REDACTED:JWT]", false},
		{"[REDACTED:jwt] and more", false},
		{"REDACTED", false},
	}
	for _, tc := range tests {
		if got := IsMarker(tc.in); got != tc.want {
			t.Errorf("IsMarker(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
