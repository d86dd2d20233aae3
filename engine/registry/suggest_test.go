package registry

import "testing"

func TestSuggestFindsTheIntendedSurface(t *testing.T) {
	r := Default()
	tests := []struct {
		name, in, want string
	}{
		{"a one-letter typo finds the surface", "runtime_work_sesion", "runtime_work_session"},
		{"an id without the runtime_ prefix finds the surface", "work_session", "runtime_work_session"},
		{"dots instead of underscores find the surface", "runtime.approvals", "runtime_approvals"},
		{"dashes and capitals find the surface", "Runtime-Leases", "runtime_leases"},
		{"a typo without the prefix finds the surface", "aprovals", "runtime_approvals"},
		{"a singular finds the plural", "runtime_lease", "runtime_leases"},
		{"an exact id suggests itself", "runtime_config", "runtime_config"},
		{"nothing close suggests nothing", "zzz", ""},
		{"an unrelated word suggests nothing", "kubernetes_pods", ""},
		{"an empty input suggests nothing", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Suggest(tt.in); got != tt.want {
				t.Errorf("Suggest(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"kitten", "sitting", 3},
		{"dual", "dule", 2},
		{"heartbeat", "hearbeat", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}
