package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version describes the build from the module and VCS information the Go
// toolchain records in the binary: the module version (a tag when
// installed with go install module@version, "(devel)" when built from a
// checkout), the commit, its time and whether the tree was modified.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (built without module information) " + runtime.Version()
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	parts := []string{v}
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		c := "commit " + rev
		if len(rev) > 12 {
			c = "commit " + rev[:12]
		}
		if modified == "true" {
			c += " (modified)"
		}
		if at != "" {
			c += " " + at
		}
		parts = append(parts, c)
	}
	parts = append(parts, fmt.Sprintf("%s %s/%s", bi.GoVersion, runtime.GOOS, runtime.GOARCH))
	return strings.Join(parts, ", ")
}
