package main

import (
	"github.com/agentruntime/statejournal/bench/workload"
)

// scenario is one workload the table has a row group for.
type scenario struct {
	Name    string
	Writers int
	// Batch is the records per RecordBatch call; 0 means Record.
	Batch int
	Sync  workload.SyncMode
	// HTTP marks the server-ingestion scenario: the engine runs behind the
	// journal server, one client connection per writer; the baselines run
	// in-process with as many writers.
	HTTP bool
	// NDJSON makes an HTTP scenario's batches NDJSON bodies.
	NDJSON bool
}

// scenarios lists the table's rows in order.
var scenarios = []scenario{
	{Name: "writers=1/sync=always", Writers: 1, Sync: workload.SyncAlways},
	{Name: "writers=8/sync=always", Writers: 8, Sync: workload.SyncAlways},
	{Name: "writers=64/sync=always", Writers: 64, Sync: workload.SyncAlways},
	{Name: "writers=256/sync=always", Writers: 256, Sync: workload.SyncAlways},
	{Name: "batch=1000/writers=4/sync=always", Writers: 4, Batch: 1000, Sync: workload.SyncAlways},
	{Name: "writers=64/sync=interval", Writers: 64, Sync: workload.SyncInterval},
	{Name: "http=16/sync=always", Writers: 16, Sync: workload.SyncAlways, HTTP: true},
	// The in-process twin of the NDJSON scenario below: the same 16
	// writers of 100-record batches, straight into RecordBatch.
	{Name: "batch=100/writers=16/sync=always", Writers: 16, Batch: 100, Sync: workload.SyncAlways},
	{Name: "http=16/ndjson=100/sync=always", Writers: 16, Batch: 100, Sync: workload.SyncAlways, HTTP: true, NDJSON: true},
}

// targetInfo names a measured system: the engine or a baseline.
type targetInfo struct {
	Name  string `json:"name"`  // as workload.Target.Name returns it
	Label string `json:"label"` // short column label: engine, a, b, c, d
	About string `json:"about"`
}

var targets = []targetInfo{
	{"engine", "engine", "the journal engine (validation, redaction, framing, index, metrics, group commit)"},
	{"plain-fsync", "a", "plain file, one JSON line + fsync per record, mutex"},
	{"plain-group", "b", "plain file, same JSON lines, group commit, no validation/redaction/framing"},
	{"wal", "c", "raw tidwall/wal, one Write (fsync) per record, mutex"},
	{"wal-batch", "d", "raw tidwall/wal, group commit into WriteBatch, one fsync per batch"},
}

func findScenario(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return scenario{}, false
}
