package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	t.Run("a run prints one line per size and the verdicts, writes the JSON document and removes its data", func(t *testing.T) {
		dir, doc := t.TempDir(), filepath.Join(t.TempDir(), "run.json")
		var out, errOut strings.Builder
		code := run([]string{"-smoke", "-sizes", "10k,20k", "-hot", "1000", "-dir", dir, "-o", doc}, &out, &errOut)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut.String())
		}
		for _, want := range []string{"10k ", "20k ", "flatness: rare-50 p50 grows", "targets: "} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("the run left %d entries in -dir", len(left))
		}
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		if len(r.Results) != 2 || r.Results[1].Records != 20_000 || len(r.Checks) != 7 {
			t.Fatalf("document has %d results, %d checks", len(r.Results), len(r.Checks))
		}
	})

	t.Run("a bad size is a usage error", func(t *testing.T) {
		var out, errOut strings.Builder
		if code := run([]string{"-sizes", "many", "-dir", t.TempDir()}, &out, &errOut); code != 2 {
			t.Fatalf("exit %d, want 2", code)
		}
	})
}
