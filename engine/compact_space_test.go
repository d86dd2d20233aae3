package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentruntime/statejournal/internal/testproc"
)

// The space tests run a writer on a small tmpfs of its own, mounted in a
// child process's private mount namespace (so the mount never reaches
// the test process and vanishes with the child). The child fills the
// file system with a filler file, leaves chosen free space, compacts,
// and reports what it saw as JSON; the parent checks the report.
const spaceChildEnv = "SJ_SPACE_CHILD"

// spaceReport is what the space child saw.
type spaceReport struct {
	ArchiveBytes int64 `json:"archive_bytes"` // measured by a dry run

	TruncErr     string `json:"trunc_err,omitempty"` // phase A: room for the archive, not for a segment copy
	TruncFailed  string `json:"trunc_failed,omitempty"`
	TruncArchive int    `json:"trunc_archives"`
	TruncRecErr  string `json:"trunc_record_err,omitempty"`

	ArchiveErr     string             `json:"archive_err,omitempty"` // phase B: no room for the archive
	ArchiveNoSpace bool               `json:"archive_no_space"`
	ArchiveFailed  string             `json:"archive_failed,omitempty"`
	Failure        *CompactionFailure `json:"failure,omitempty"`
	Metric         float64            `json:"metric"`
	ArchiveRecErr  string             `json:"archive_record_err,omitempty"`

	RetryErr     string             `json:"retry_err,omitempty"` // phase C: space freed
	RetryArchive int                `json:"retry_archives"`
	RetryFailure *CompactionFailure `json:"retry_failure,omitempty"`

	Acked      int    `json:"acked"`
	ReopenErr  string `json:"reopen_err,omitempty"`
	Readable   int    `json:"readable"`
	Validation string `json:"validation,omitempty"`
}

func spaceChild(dir string) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", a...)
		return faultChildFailed
	}
	if ns, _ := os.Readlink("/proc/self/ns/mnt"); ns == "" || ns == os.Getenv(faultMntNSEnv) {
		return fail("refusing to mount: not in a private mount namespace (%q)", ns)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
		return fail("mount a 2 MiB tmpfs on %s: %v", dir, err)
	}
	var rep spaceReport
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	jdir := filepath.Join(dir, "journal")
	j, err := Open(jdir, WithSegmentSize(64<<10), WithRetention(Retention{}), WithRegisterer(reg))
	if err != nil {
		return fail("open: %v", err)
	}
	acked := map[string]uint64{}
	write := func(n int) error {
		for i := 0; i < n; i++ {
			c := heartbeat(fmt.Sprintf("ws-%d", i%5))
			c.Metadata = map[string]any{"pad": randomPad(160)}
			rc, err := j.Record(ctx, c)
			if err != nil {
				return err
			}
			acked[rc.EventID] = rc.Sequence
		}
		return nil
	}
	if err := write(600); err != nil { // about three sealed 64 KiB segments
		return fail("write: %v", err)
	}
	dry, err := j.Compact(ctx, CompactOptions{DryRun: true})
	if err != nil || len(dry.Archives) < 2 {
		return fail("dry run: %v %+v", err, dry)
	}
	rep.ArchiveBytes = dry.Archives[0].OutputBytes
	filler := filepath.Join(dir, "filler")
	// fillLeaving fills the file system and then gives back free bytes.
	fillLeaving := func(free int64) error {
		f, err := os.OpenFile(filler, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		chunk := make([]byte, 4096)
		for {
			if _, err := f.Write(chunk); err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					break
				}
				return err
			}
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		return f.Truncate(fi.Size()&^4095 - free)
	}

	// A: room for one archive, not for a copy of a 64 KiB segment (what
	// tidwall/wal's front truncation makes).
	if err := fillLeaving((rep.ArchiveBytes+4095)&^4095 + 4096); err != nil {
		return fail("fill: %v", err)
	}
	r1, err := j.Compact(ctx, CompactOptions{})
	if err != nil {
		rep.TruncErr = err.Error()
	}
	rep.TruncArchive = len(r1.Archives)
	rep.TruncFailed = j.Status().Failed
	if err := write(5); err != nil {
		rep.TruncRecErr = err.Error()
	}

	// B: a sealed segment more, and no room for its archive.
	os.Remove(filler)
	if err := write(250); err != nil {
		// The journal did not survive phase A: that is the finding, not
		// a setup problem.
		rep.TruncRecErr = "write after phase A: " + err.Error()
		json.NewEncoder(os.Stdout).Encode(rep)
		return 0
	}
	if err := fillLeaving(4096); err != nil {
		return fail("fill: %v", err)
	}
	_, err = j.Compact(ctx, CompactOptions{})
	if err != nil {
		rep.ArchiveErr, rep.ArchiveNoSpace = err.Error(), errors.Is(err, syscall.ENOSPC)
	}
	st := j.Status()
	rep.ArchiveFailed, rep.Failure = st.Failed, st.CompactionFailure
	for _, mf := range must(reg.Gather()) {
		if mf.GetName() == "state_journal_compaction_failures_total" {
			for _, m := range mf.GetMetric() {
				if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == FailureNoSpace {
					rep.Metric = m.GetCounter().GetValue()
				}
			}
		}
	}
	if err := write(3); err != nil {
		rep.ArchiveRecErr = err.Error()
	}

	// C: space freed: the retry compacts.
	os.Remove(filler)
	r3, err := j.Compact(ctx, CompactOptions{})
	if err != nil {
		rep.RetryErr = err.Error()
	}
	rep.RetryArchive = len(r3.Archives)
	rep.RetryFailure = j.Status().CompactionFailure
	if err := write(5); err != nil {
		rep.RetryErr += "; record: " + err.Error()
	}
	rep.Acked = len(acked)
	j.Close()
	j2, err := Open(jdir, WithSegmentSize(64<<10), WithRetention(Retention{}))
	if err != nil {
		rep.ReopenErr = err.Error()
	} else {
		res, err := j2.Query(ctx, Query{Limit: -1})
		if err != nil {
			rep.ReopenErr = err.Error()
		}
		for _, c := range res.Changes {
			if acked[c.EventID] == c.Sequence {
				rep.Readable++
			}
		}
		j2.Close()
	}
	vr, err := ValidateDir(ctx, jdir, ValidateOptions{})
	if err != nil || !vr.Clean {
		rep.Validation = fmt.Sprintf("%v %+v", err, vr.Problems)
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return fail("report: %v", err)
	}
	return 0
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCompactionOutOfSpaceLeavesTheHotLogWritableAndRetries(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (a private mount namespace as root)")
	}
	dir := t.TempDir()
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Skipf("no mount namespace here: %v", err)
	}
	r, err := testproc.TryRun(t, testproc.Options{Role: "space", Env: []string{spaceChildEnv + "=" + dir, faultMntNSEnv + "=" + ns},
		SysProcAttr: &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}})
	switch {
	case err != nil:
		t.Skipf("cannot start a child in its own mount namespace: %v", err)
	case r.ExitCode == faultChildFailed:
		t.Skipf("a small tmpfs cannot be mounted here: %s", strings.TrimSpace(r.Stderr))
	case r.ExitCode != 0:
		t.Fatalf("space child: %s", r)
	}
	var rep spaceReport
	if err := json.Unmarshal(r.Stdout, &rep); err != nil {
		t.Fatalf("space child report: %v\n%s", err, r)
	}
	t.Logf("report: %+v", rep)
	// A: the front truncation needs no space; whatever failed, the hot
	// log must not be failed.
	if rep.TruncFailed != "" || rep.TruncRecErr != "" {
		t.Fatalf("with room for an archive but not a segment copy, compaction (err %q) left the journal failed: %s; record: %s",
			rep.TruncErr, rep.TruncFailed, rep.TruncRecErr)
	}
	if rep.TruncArchive == 0 {
		t.Fatalf("with room for an archive nothing was compacted: %s", rep.TruncErr)
	}
	// B: no room for the archive: a reported, counted, non-sticky failure.
	if !rep.ArchiveNoSpace || rep.ArchiveFailed != "" || rep.ArchiveRecErr != "" {
		t.Fatalf("no room for the archive: err %q (ENOSPC %v), journal failed %q, record after it %q",
			rep.ArchiveErr, rep.ArchiveNoSpace, rep.ArchiveFailed, rep.ArchiveRecErr)
	}
	if rep.Failure == nil || rep.Failure.Reason != FailureNoSpace || rep.Metric != 1 {
		t.Fatalf("the failure is not reported: status %+v, metric %v", rep.Failure, rep.Metric)
	}
	// C: freed space, the retry compacts and the failure clears.
	if rep.RetryErr != "" || rep.RetryArchive == 0 || rep.RetryFailure != nil {
		t.Fatalf("retry after freeing space: err %q, %d archives, failure still %+v", rep.RetryErr, rep.RetryArchive, rep.RetryFailure)
	}
	if rep.ReopenErr != "" || rep.Readable != rep.Acked || rep.Validation != "" {
		t.Fatalf("after reopen: %s; %d of %d acknowledged records readable; validate: %s", rep.ReopenErr, rep.Readable, rep.Acked, rep.Validation)
	}
}
