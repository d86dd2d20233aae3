package main

import (
	"github.com/agentruntime/statejournal/bench/enginetarget"
	"github.com/agentruntime/statejournal/bench/workload"
	"github.com/agentruntime/statejournal/engine"
)

// noAutoCompact, set by the child's -no-autocompact, opens the engine
// without background compaction (a diagnostic run).
var noAutoCompact bool

// openEngine opens the journal engine as a target in dir. In the HTTP
// scenarios the engine runs behind the journal server and the writers post
// through one client connection each (NDJSON bodies in the NDJSON scenario).
func openEngine(dir string, s scenario) (workload.Target, error) {
	var extra []engine.Option
	if noAutoCompact {
		extra = append(extra, engine.WithAutoCompact(engine.AutoCompact{Enabled: false}))
	}
	if s.HTTP {
		return enginetarget.OpenHTTP(dir, enginetarget.RootDirFor(dir), s.Sync, s.Writers, s.NDJSON, extra...)
	}
	return enginetarget.Open(dir, enginetarget.RootDirFor(dir), s.Sync, extra...)
}
