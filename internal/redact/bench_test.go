package redact

import (
	"strings"
	"testing"
)

func BenchmarkString(b *testing.B) {
	cases := []struct{ name, v string }{
		{"kind=aggregate_id", "ws-42"},
		{"kind=uuid", "01890a5d-ac96-774b-bcce-b302099a8057"},
		{"kind=ulid", "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{"kind=path", ".tmp/runtime/work-sessions.json"},
		{"kind=time", "2024-06-01T12:34:56.789Z"},
		{"kind=sentence", "worker heartbeat missed; retrying in 5s after lease renewal"},
		{"kind=url", "https://example.com/v1/changes?after=42&limit=100"},
		{"kind=git_sha", "4b825dc642cb6eb9a060e54bf8d69288fbee4904"},
		{"kind=text_256B", strings.Repeat("the runtime renewed lease ws-42; ", 8)[:256]},
		{"kind=secret/github_token", "gh" + "p_" + fake(1, 36, alphaB62)},
		{"kind=secret/bearer", "Authorization: Bearer " + fake(2, 40, alphaB62)},
		{"kind=secret/high_entropy", fake(3, 48, alphaB62)},
		// Adversarial 64 KiB inputs: every matcher must stay linear.
		{"kind=adversarial/prefix_64KiB", strings.Repeat("sk-", 64<<10/3)},
		{"kind=adversarial/jwt_64KiB", strings.Repeat("eyJ-", 64<<10/4)},
		{"kind=adversarial/assign_64KiB", strings.Repeat(`x_token="[REDACTED:`, 64<<10/19)},
		{"kind=adversarial/url_64KiB", strings.Repeat("a://b:", 64<<10/6)},
		{"kind=adversarial/entropy_64KiB", strings.Repeat("0123456789abcdef", 64<<10/16)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.v)))
			for b.Loop() {
				String(c.v)
			}
		})
	}
}

func BenchmarkIsSecretKey(b *testing.B) {
	for _, k := range []string{"surface", "attempt", "GITHUB_TOKEN", "promptTokenCount"} {
		b.Run("key="+k, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				IsSecretKey(k)
			}
		})
	}
}

func BenchmarkMetadata(b *testing.B) {
	clean := cleanMetadata()
	nested := map[string]any{
		"worker": "ws-42", "attempt": 3,
		"lease": map[string]any{"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "expires_at": "2024-06-01T12:34:56.789Z"},
		"tags":  []any{"heartbeat", "runtime"},
	}
	secret := cleanMetadata()
	secret["api_key"] = fake(4, 32, alphaB62)
	big := map[string]any{}
	for i := range 40 {
		big[strings.Repeat("k", i%8+1)+string(rune('a'+i%26))+string(rune('a'+i/26))] = strings.Repeat("v", 100)
	}
	cases := []struct {
		name string
		m    map[string]any
	}{
		{"shape=clean_5_keys", clean},
		{"shape=clean_nested", nested},
		{"shape=one_secret_key", secret},
		{"shape=oversize_40_keys", big},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			lim := DefaultLimits()
			b.ReportAllocs()
			for b.Loop() {
				Metadata(c.m, lim)
			}
		})
	}
}
