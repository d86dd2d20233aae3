package archive

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// archiveHeartbeats builds n realistic runtime-state-change-v1 records as
// the engine would archive them: mostly work-session heartbeats over 64
// aggregates, with some lease, approval, dispatcher and lifecycle changes,
// UUIDv7-like event ids (whose random tail does not compress), rising
// sequences and commit times a few milliseconds apart.
func archiveHeartbeats(n int) []Record {
	rng := rand.New(rand.NewPCG(42, 42))
	type kind struct{ surface, source, aggregate, change, hint string }
	heartbeat := kind{"runtime_work_session", "runtime.work_session", "work_session", "heartbeat", "runtime_health"}
	others := []kind{
		{"runtime_leases", "runtime.leases", "lease", "updated", "runtime_health"},
		{"runtime_approvals", "runtime.approvals", "approval", "created", "runtime_action_panel"},
		{"runtime_dispatcher_results", "runtime.dispatcher", "dispatch", "transitioned", "runtime_action_panel"},
		{"runtime_lifecycle_transitions", "runtime.lifecycle", "work_session", "transitioned", "runtime_health"},
	}
	recs := make([]Record, n)
	t := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range recs {
		k := heartbeat
		if rng.IntN(100) >= 85 {
			k = others[rng.IntN(len(others))]
		}
		seq := uint64(i + 1)
		t = t.Add(time.Duration(rng.IntN(5_000_000)))
		ms := t.UnixMilli()
		payload := fmt.Appendf(nil, `{"schema_version":"runtime-state-change-v1","event_id":"%08x-%04x-7%03x-%04x-%012x","sequence":%d,`+
			`"occurred_at":"%s","source":"%s","surface":"%s","change_type":"%s","aggregate_type":"%s","aggregate_id":"ws-%d",`+
			`"changed_surfaces":["%s"],"severity":"info","snapshot_hint":"%s","mutates_authority_state":false}`,
			ms>>16, ms&0xffff, rng.IntN(0x1000), 0x8000|rng.IntN(0x4000), rng.Uint64()&0xffffffffffff, seq,
			t.Format(time.RFC3339Nano), k.source, k.surface, k.change, k.aggregate, rng.IntN(64),
			k.surface, k.hint)
		recs[i] = Record{Seq: seq, Time: t.UnixNano(), Label: k.surface, Payload: payload}
	}
	return recs
}

// archiveCPU returns the CPU time the process has used. Benchmarks report
// input bytes per CPU second ("cpu-MB/s") beside the wall-clock MB/s: on a
// shared machine the former is the steadier single-core figure.
func archiveCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func archiveReportCPU(b *testing.B, start time.Duration, bytesPerOp int64) {
	if cpu := archiveCPU() - start; cpu > 0 && bytesPerOp > 0 {
		b.ReportMetric(float64(bytesPerOp)*float64(b.N)/1e6/cpu.Seconds(), "cpu-MB/s")
	}
}

func archivePayloadBytes(recs []Record) int64 {
	var n int64
	for _, r := range recs {
		n += int64(len(r.Payload))
	}
	return n
}

// BenchmarkWriteArchive measures Write end to end (encode, zstd,
// write, fsync, rename, directory fsync) on heartbeat-heavy input, in MB/s
// of record payload, and reports the compression ratio (payload bytes per
// file byte). The baseline writes the same payloads uncompressed to a
// plain file with one fsync.
func BenchmarkWriteArchive(b *testing.B) {
	recs := archiveHeartbeats(20_000)
	input := archivePayloadBytes(recs)
	b.Logf("%d records, %d payload bytes, %.0f bytes/record", len(recs), input, float64(input)/float64(len(recs)))

	run := func(b *testing.B, opts WriterOptions) {
		dir := b.TempDir()
		path := filepath.Join(dir, "bench.sjar")
		b.SetBytes(input)
		b.ReportAllocs()
		var foot Footer
		cpu := archiveCPU()
		for b.Loop() {
			var err error
			if foot, err = Write(path, archiveIter(recs), opts); err != nil {
				b.Fatal(err)
			}
		}
		archiveReportCPU(b, cpu, input)
		b.ReportMetric(foot.CompressionRatio(), "ratio")
	}
	for _, c := range []struct {
		name  string
		level zstd.EncoderLevel
		block int
	}{
		{"level=default/block=64KiB", zstd.SpeedDefault, 64 << 10},
		{"level=fastest/block=64KiB", zstd.SpeedFastest, 64 << 10},
		{"level=better/block=64KiB", zstd.SpeedBetterCompression, 64 << 10},
		{"level=default/block=16KiB", zstd.SpeedDefault, 16 << 10},
		{"level=default/block=256KiB", zstd.SpeedDefault, 256 << 10},
	} {
		b.Run(c.name, func(b *testing.B) { run(b, WriterOptions{Level: c.level, BlockSize: c.block}) })
	}

	b.Run("baseline=plain-file-one-fsync", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "plain")
		b.SetBytes(input)
		b.ReportAllocs()
		cpu := archiveCPU()
		for b.Loop() {
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 256<<10)
			for _, r := range recs {
				if len(buf)+len(r.Payload) > cap(buf) {
					f.Write(buf)
					buf = buf[:0]
				}
				buf = append(buf, r.Payload...)
			}
			f.Write(buf)
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		archiveReportCPU(b, cpu, input)
		b.ReportMetric(1, "ratio")
	})
}

// BenchmarkScanArchive measures reading back an archive of heartbeat-heavy
// records: full scans in both directions (MB/s of payload delivered), a
// label filter that matches a small share of blocks, and a seek into the
// last block.
func BenchmarkScanArchive(b *testing.B) {
	recs := archiveHeartbeats(20_000)
	// One rare label, in a single block.
	recs[10_000].Label = "runtime_health_snapshot"
	path, _ := archiveWrite(b, b.TempDir(), recs, WriterOptions{})
	a := archiveOpen(b, path)
	input := archivePayloadBytes(recs)
	last := a.Blocks()[len(a.Blocks())-1]
	count := func(n *int) func(Record) bool { return func(Record) bool { *n++; return true } }

	cases := []struct {
		name  string
		bytes int64
		want  int
		scan  func(fn func(Record) bool) error
	}{
		{"all/forward", input, len(recs), func(fn func(Record) bool) error { return a.Scan(0, nil, fn) }},
		{"all/reverse", input, len(recs), func(fn func(Record) bool) error { return a.ScanReverse(0, nil, fn) }},
		{"label=one-block", 0, 1, func(fn func(Record) bool) error {
			return a.Scan(0, []string{"runtime_health_snapshot"}, fn)
		}},
		{"label=heartbeats", 0, -1, func(fn func(Record) bool) error {
			return a.Scan(0, []string{"runtime_work_session"}, fn)
		}},
		{"from=last-block", 0, int(len(recs)) - int(last.FirstSeq) + 1, func(fn func(Record) bool) error {
			return a.Scan(last.FirstSeq, nil, fn)
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if c.bytes > 0 {
				b.SetBytes(c.bytes)
			}
			b.ReportAllocs()
			cpu := archiveCPU()
			for b.Loop() {
				n := 0
				if err := c.scan(count(&n)); err != nil {
					b.Fatal(err)
				}
				if c.want >= 0 && n != c.want {
					b.Fatalf("scanned %d records, want %d", n, c.want)
				}
			}
			archiveReportCPU(b, cpu, c.bytes)
		})
	}
}
