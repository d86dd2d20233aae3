package main

import (
	"github.com/agentruntime/statejournal/bench/enginetarget"
	"github.com/agentruntime/statejournal/bench/workload"
)

// openEngine opens the journal engine as a target in dir. In the HTTP
// scenarios the engine runs behind the journal server and the writers post
// through one client connection each (NDJSON bodies in the NDJSON scenario).
func openEngine(dir string, s scenario) (workload.Target, error) {
	if s.HTTP {
		return enginetarget.OpenHTTP(dir, enginetarget.RootDirFor(dir), s.Sync, s.Writers, s.NDJSON)
	}
	return enginetarget.Open(dir, enginetarget.RootDirFor(dir), s.Sync)
}
