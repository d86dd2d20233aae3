package engine

import (
	"context"
	"testing"

	"github.com/agentruntime/statejournal/record"
)

// TestGoldenCheckpointCodesKeepTheirMeaning reads the change type and
// severity bytes the golden checkpoint (testdata/step5-dir) wrote for
// each hot record and holds them to record's fixed codes of the record
// itself: a code written by an earlier build means the same today.
func TestGoldenCheckpointCodesKeepTheirMeaning(t *testing.T) {
	meta, rest, err := readCheckpointFile(goldenDataDirV2)
	if err != nil {
		t.Fatalf("read the golden checkpoint: %v", err)
	}
	dir := t.TempDir()
	copyDir(t, goldenDataDirV2, dir)
	j, err := Open(dir, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	res, err := j.Query(context.Background(), Query{After: meta.First - 1, HasAfter: true, Limit: int(meta.Last - meta.First + 1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != int(meta.Last-meta.First+1) {
		t.Fatalf("%d hot records read back, the checkpoint covers %d..%d", len(res.Changes), meta.First, meta.Last)
	}
	kinds := map[string]bool{}
	for _, c := range res.Changes {
		e := readEntry(rest[4+int(c.Sequence-meta.First)*entryDiskSize:])
		ct, _ := record.ChangeTypeCode(c.ChangeType)
		sev, _ := record.SeverityCode(c.Severity)
		if e.ctype != ct || e.sev != sev {
			t.Fatalf("sequence %d (%s, %s): the golden checkpoint stored change type %d and severity %d, record's codes are %d and %d",
				c.Sequence, c.ChangeType, c.Severity, e.ctype, e.sev, ct, sev)
		}
		kinds[c.ChangeType+"/"+c.Severity] = true
	}
	for _, s := range meta.Surfaces {
		if s.Stat.Records == 0 {
			continue
		}
		if _, ok := record.ChangeTypeName(s.Stat.LastChangeType); !ok {
			t.Errorf("surface %s: the golden checkpoint's last change type %d names no change type", s.Name, s.Stat.LastChangeType)
		}
		if _, ok := record.SeverityName(s.Stat.LastSeverity); !ok {
			t.Errorf("surface %s: the golden checkpoint's last severity %d names no severity", s.Name, s.Stat.LastSeverity)
		}
	}
	t.Logf("%d records, kinds %v", len(res.Changes), kinds)
}
