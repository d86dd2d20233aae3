package coverage

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The watcher reads every changed file; with relatime each first read of
// a new version would write its inode's access time to the disk the
// journal fsyncs. It reads with O_NOATIME instead.
func TestHashingAFileLeavesItsAccessTimeAlone(t *testing.T) {
	dir := t.TempDir()
	atime := func(p string) time.Time {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return time.Unix(st.Atim.Sec, st.Atim.Nsec)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	write := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(`{"v":1}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, time.Now()); err != nil { // atime before mtime: relatime updates it on a read
			t.Fatal(err)
		}
		return p
	}
	// The control: does a plain read update access times here at all?
	ctl := write("control.json")
	if _, err := os.ReadFile(ctl); err != nil {
		t.Fatal(err)
	}
	if atime(ctl).Equal(old) {
		t.Skip("this file system does not update access times on read (noatime): nothing to observe")
	}
	p := write("agent.json")
	var x hasher
	if _, err := x.file(p, 1<<20); err != nil {
		t.Fatal(err)
	}
	if got := atime(p); !got.Equal(old) {
		t.Fatalf("hashing the file moved its access time from %s to %s", old, got)
	}
}
