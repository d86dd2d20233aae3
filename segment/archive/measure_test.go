package archive

import (
	"math/rand/v2"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Measure is the dry run of Write: for the same records and options it
// reports the footer Write returns and the file size Write produces,
// byte for byte, whatever the options leave to their defaults.
func TestMeasureReportsExactlyWhatWriteWrites(t *testing.T) {
	recs := archiveRandomRecords(rand.New(rand.NewPCG(7, 12)), 3000, []string{"runtime_work_session", "runtime_leases", "runtime_config"})
	at := time.Unix(1_800_000_000, 0).UTC()
	for _, tc := range []struct {
		name string
		opts WriterOptions
	}{
		{"default block size and level", WriterOptions{CreatedAt: at}},
		{"small blocks at the default level", WriterOptions{CreatedAt: at, BlockSize: MinBlockSize}},
		{"default blocks at a better level", WriterOptions{CreatedAt: at, Level: zstd.SpeedBetterCompression}},
		{"a stated range with coalesced records", WriterOptions{CreatedAt: at, RangeFirst: recs[0].Seq, RangeLast: recs[len(recs)-1].Seq + 5, Coalesced: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			measured, err := Measure(archiveIter(recs), tc.opts)
			if err != nil {
				t.Fatalf("Measure: %v", err)
			}
			path, written := archiveWrite(t, t.TempDir(), recs, tc.opts)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(measured, written) {
				t.Errorf("Measure's footer\n%+v\ndiffers from Write's\n%+v", measured, written)
			}
			if measured.FileBytes != fi.Size() {
				t.Errorf("Measure says %d bytes, Write wrote %d", measured.FileBytes, fi.Size())
			}
		})
	}
	t.Run("a block size out of range is refused by both", func(t *testing.T) {
		bad := WriterOptions{BlockSize: MaxBlockSize + 1}
		if _, err := Measure(archiveIter(recs), bad); err == nil {
			t.Error("Measure took a block size over MaxBlockSize")
		}
		if _, err := Write(t.TempDir()+"/x.sjar", archiveIter(recs), bad); err == nil {
			t.Error("Write took a block size over MaxBlockSize")
		}
	})
}
