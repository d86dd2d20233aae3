package compactbench

import (
	"testing"
	"time"
)

func TestMeasurementsProduceFigures(t *testing.T) {
	r, err := MeasureCompaction(t.TempDir(), 3000)
	if err != nil {
		t.Fatal(err)
	}
	if r.Ratio <= 1 || r.InputBytes <= r.OutputBytes || r.MBPerCPUSecond <= 0 {
		t.Fatalf("compaction figures: %+v", r)
	}
	if err := MeasureAppendLatency(t.TempDir(), 4, 300*time.Millisecond, &r); err != nil {
		t.Fatal(err)
	}
	if r.P99Quiet <= 0 || r.P99Compacting <= 0 || r.RecordsQuiet == 0 {
		t.Fatalf("latency figures: %+v", r)
	}
}
