package engine

// The damage campaign: every kind of file a data directory holds, damaged
// every way an operator, a disk or a backup tool can damage it, then
// opened (read-only and as the writer), queried, compacted, reopened and
// validated. Each cell runs the same script on a copy of one template
// journal: once clean (the twin) and once damaged. The oracle, per step:
// the answer is exactly the clean twin's, or the damage is reported by
// name (an error naming the file, a recovery record naming it, a validate
// problem naming it). Anything else is a silent loss or a wrong answer,
// and the test fails on it.
//
// The table of kinds x damages x outcomes is logged; with
// SJ_CAMPAIGN_TABLE=path it is also written there as markdown. The default
// run uses a reduced damage set so `make test` stays fast;
// SJ_CAMPAIGN_FULL=1 (make crash) runs every position.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/segment/archive"
)

const campaignSegment = 64 << 10

// campaignSurface is one surface the campaign journal writes to.
type campaignSurface struct {
	surface, source, aggType string
	ctypes                   []string
}

var campaignSurfaces = []campaignSurface{
	{"runtime_work_session", "runtime.work_session", "work_session", []string{"heartbeat", "heartbeat", "heartbeat", "updated"}},
	{"runtime_leases", "runtime.leases", "lease", []string{"created", "heartbeat", "updated"}},
	{"runtime_scheduler_jobs", "runtime.scheduler", "job", []string{"created", "transitioned", "updated"}},
	{"runtime_notifications", "runtime.notifications", "notification", []string{"created", "updated"}},
	{"runtime_agent_registry", "runtime.agents", "agent", []string{"heartbeat", "updated"}},
}

// campaignChange is the i-th change of a phase. Every third change carries
// a writer-supplied event id and a writer-supplied occurred_at (so a retry
// is the same content); the others get journal-generated ones. Two
// journals built with the same base get the same writer-supplied records.
func campaignChange(base time.Time, phase string, i int) Change {
	s := campaignSurfaces[i%len(campaignSurfaces)]
	c := Change{Source: s.source, Surface: s.surface, ChangeType: s.ctypes[(i/len(campaignSurfaces))%len(s.ctypes)],
		AggregateType: s.aggType, AggregateID: fmt.Sprintf("%s-%d", s.aggType, i%11),
		Metadata: map[string]any{"phase": phase, "i": i, "pad": strings.Repeat("m", i%23)}}
	if i%3 == 0 {
		c.EventID = fmt.Sprintf("evt-%s-%05d", phase, i)
		c.OccurredAt = base.Add(time.Duration(i) * time.Millisecond)
	}
	if i%17 == 0 {
		c.CorrelationID = fmt.Sprintf("corr-%d", i%5)
	}
	return c
}

// campaignWrite writes n changes of phase, alternating batches and single
// records, and returns the changes with writer-supplied ids by id.
func campaignWrite(t *testing.T, j *Journal, base time.Time, phase string, from, n int, written map[string]Change) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < from+n; {
		if i%40 < 20 {
			var batch []Change
			for k := 0; k < 10 && i < from+n; k++ {
				batch = append(batch, campaignChange(base, phase, i))
				i++
			}
			rcs, err := j.RecordBatch(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for k, c := range batch {
				if c.EventID != "" {
					c.Sequence = rcs[k].Sequence
					written[c.EventID] = c
				}
			}
			continue
		}
		c := campaignChange(base, phase, i)
		rc, err := j.Record(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if c.EventID != "" {
			c.Sequence = rc.Sequence
			written[c.EventID] = c
		}
		i++
	}
}

// campaignTornTail appends the start of an entry that a crash cut short
// to the last hot segment, so the next writer open cuts it into
// quarantine and writes state/last-recovery.json.
func campaignTornTail(t *testing.T, dir string) {
	t.Helper()
	segs, _, err := segment.ListHotSegments(filepath.Join(dir, "hot"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("list hot segments: %v (%d)", err, len(segs))
	}
	f, err := os.OpenFile(segs[len(segs)-1].Path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A length prefix of 300 bytes followed by 40: never acknowledged.
	if _, err := f.Write(append([]byte{0xac, 0x02}, bytes.Repeat([]byte{'t'}, 40)...)); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// campaignJournal is a template journal and what was written to it.
type campaignJournal struct {
	dir     string
	snaps   []string // earlier copies of the whole directory, oldest first
	written map[string]Change
	lock    []byte // LOCK as a SIGKILLed writer leaves it
}

// buildCampaignJournal builds the template: several surfaces, heartbeats,
// writer-supplied ids, several sealed segments, two compactions whose
// retention removed archives (so there is a horizon), two recoveries
// (torn tails), then more hot records; and snapshots on the way.
func buildCampaignJournal(t *testing.T, dir, snapRoot string, base time.Time) *campaignJournal {
	t.Helper()
	cj := &campaignJournal{dir: dir, written: map[string]Change{}}
	opts := []Option{WithSegmentSize(campaignSegment), WithSync(SyncNone), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	ctx := context.Background()
	snap := func(name string) {
		d := filepath.Join(snapRoot, name)
		copyDir(t, dir, d)
		cj.snaps = append(cj.snaps, d)
	}
	j := openT(t, dir, opts...)
	campaignWrite(t, j, base, "a", 0, 450, cj.written)
	j.Close()
	snap("s1-before-compaction")
	campaignTornTail(t, dir)
	j = openT(t, dir, opts...) // recovery 1: cuts the torn tail
	compact := func(maxRecords uint64) {
		rep, err := j.Compact(ctx, CompactOptions{Retention: &Retention{MaxRecords: maxRecords}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Removed) == 0 || len(rep.Archives) == 0 {
			t.Fatalf("the template's compaction must archive and remove: %+v", rep)
		}
	}
	compact(300)
	j.Close()
	snap("s2-after-compaction-1")
	j = openT(t, dir, opts...)
	campaignWrite(t, j, base, "b", 0, 450, cj.written)
	compact(560)
	campaignWrite(t, j, base, "c", 0, 60, cj.written)
	j.Close()
	snap("s3-after-compaction-2")
	j = openT(t, dir, opts...)
	campaignWrite(t, j, base, "d", 0, 140, cj.written)
	j.Close()
	snap("s4-before-the-last-writes")
	campaignTornTail(t, dir)
	j = openT(t, dir, opts...) // recovery 2
	// Enough last writes that the active segment holds records (a rotation
	// may just have left it empty).
	for i := 0; i < 400; i += 10 {
		campaignWrite(t, j, base, "e", i, 10, cj.written)
		segs, _, err := segment.ListHotSegments(filepath.Join(dir, "hot"))
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) >= 3 && segs[len(segs)-1].Size >= 12<<10 {
			break
		}
	}
	lock, err := os.ReadFile(filepath.Join(dir, fsx.LockFileName))
	if err != nil {
		t.Fatal(err)
	}
	cj.lock = lock
	j.Close()
	// A writer killed by SIGKILL leaves its holder in LOCK.
	if err := os.WriteFile(filepath.Join(dir, fsx.LockFileName), lock, 0o644); err != nil {
		t.Fatal(err)
	}
	return cj
}

// campaignArchives lists the archives of a data directory by their names,
// oldest first.
func campaignArchives(t *testing.T, dir string) []campaignTarget {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "archive"))
	if err != nil {
		t.Fatal(err)
	}
	var out []campaignTarget
	for _, e := range ents {
		if first, last, ok := archive.ParseFileName(e.Name()); ok {
			out = append(out, campaignTarget{rel: filepath.Join("archive", e.Name()), first: first, last: last})
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].first < out[k].first })
	return out
}

// campaignTarget is one file the campaign damages.
type campaignTarget struct {
	kind  string // row of the table
	rel   string // path inside the data directory
	first uint64 // sequence range the file holds (hot segments and archives), 0 when none
	last  uint64
	// onlyStale: the file is not in the template; "stale" puts back an
	// earlier version (an archive retention removed).
	onlyStale bool
}

// campaignTargets lists the template's files by kind.
func campaignTargets(t *testing.T, cj *campaignJournal) []campaignTarget {
	t.Helper()
	var out []campaignTarget
	segs, _, err := segment.ListHotSegments(filepath.Join(cj.dir, "hot"))
	if err != nil || len(segs) < 3 {
		t.Fatalf("the template needs at least 3 hot segments, has %d (%v)", len(segs), err)
	}
	hotRange := func(i int) (uint64, uint64) {
		last := uint64(1<<63 - 1)
		if i+1 < len(segs) {
			last = segs[i+1].FirstSeq - 1
		}
		return segs[i].FirstSeq, last
	}
	add := func(kind string, i int) {
		f, l := hotRange(i)
		rel, _ := filepath.Rel(cj.dir, segs[i].Path)
		out = append(out, campaignTarget{kind: kind, rel: rel, first: f, last: l})
	}
	add("sealed hot segment (first)", 0)
	add("sealed hot segment (last sealed)", len(segs)-2)
	add("active hot segment", len(segs)-1)
	as := campaignArchives(t, cj.dir)
	if len(as) < 3 {
		t.Fatalf("the template needs at least 3 archives, has %d", len(as))
	}
	for _, p := range []struct {
		kind string
		a    campaignTarget
	}{{"archive (first)", as[0]}, {"archive (middle)", as[len(as)/2]}, {"archive (last)", as[len(as)-1]}} {
		p.a.kind = p.kind
		out = append(out, p.a)
	}
	// An archive retention removed: only "stale" applies (put it back).
	for _, s := range cj.snaps {
		if sas := campaignArchives(t, s); len(sas) > 0 && sas[0].last < as[0].first {
			sas[0].kind, sas[0].onlyStale = "archive (removed by retention)", true
			out = append(out, sas[0])
			break
		}
	}
	fixed := map[string]string{ // names of the on-disk format
		"state/index.ckpt":           "index checkpoint",
		"state/horizon.json":         "horizon file",
		"state/last-recovery.json":   "recovery state",
		"state/last-compaction.json": "compaction state",
	}
	for rel, kind := range fixed {
		if _, err := os.Stat(filepath.Join(cj.dir, rel)); err != nil {
			t.Fatalf("the template has no %s (%s): %v", kind, rel, err)
		}
	}
	// Every other metadata file (an identity file, whatever its name) is
	// damaged too: state/ and the top level, LOCK apart.
	for _, d := range []string{"state", "."} {
		ents, _ := os.ReadDir(filepath.Join(cj.dir, d))
		for _, e := range ents {
			rel := filepath.Join(d, e.Name())
			if e.IsDir() || e.Name() == fsx.LockFileName || strings.HasSuffix(e.Name(), ".sock") {
				continue
			}
			if _, ok := fixed[rel]; !ok {
				fixed[rel] = "state file " + rel
			}
		}
	}
	rels := make([]string, 0, len(fixed))
	for rel := range fixed {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		out = append(out, campaignTarget{kind: fixed[rel], rel: rel})
	}
	out = append(out, campaignTarget{kind: "LOCK (at rest, left by a killed writer)", rel: fsx.LockFileName})
	return out
}

// campaignDamage is one way to damage a file.
type campaignDamage struct {
	name string
	// apply damages dst/rel. It returns a non-empty reason when the damage
	// does not apply to this file (the cell is "n/a").
	apply func(cj, other *campaignJournal, dst string, tg campaignTarget) string
}

func flipAt(frac float64) func(cj, other *campaignJournal, dst string, tg campaignTarget) string {
	return func(_, _ *campaignJournal, dst string, tg campaignTarget) string {
		p := filepath.Join(dst, tg.rel)
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			return "empty file"
		}
		off := int(frac * float64(len(b)))
		off = min(max(off, 0), len(b)-1)
		b[off] ^= 0x01
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err.Error()
		}
		return ""
	}
}

// flipDigit flips the lowest bit of the first decimal digit of a JSON
// file: a plausible value that is wrong.
func flipDigit(_, _ *campaignJournal, dst string, tg campaignTarget) string {
	p := filepath.Join(dst, tg.rel)
	b, err := os.ReadFile(p)
	if err != nil || !json0(b) {
		return "not a JSON file"
	}
	i := bytes.IndexAny(b, "123456789")
	if i < 0 {
		return "no digit"
	}
	b[i] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return err.Error()
	}
	return ""
}

func json0(b []byte) bool { return len(b) > 0 && b[0] == '{' }

func cutAt(frac float64) func(cj, other *campaignJournal, dst string, tg campaignTarget) string {
	return func(_, _ *campaignJournal, dst string, tg campaignTarget) string {
		p := filepath.Join(dst, tg.rel)
		fi, err := os.Stat(p)
		if err != nil || fi.Size() == 0 {
			return "empty file"
		}
		n := int64(frac * float64(fi.Size()))
		if frac == 1 {
			n = fi.Size() - 1
		}
		if err := os.Truncate(p, n); err != nil {
			return err.Error()
		}
		return ""
	}
}

func deleteFile(_, _ *campaignJournal, dst string, tg campaignTarget) string {
	if err := os.Remove(filepath.Join(dst, tg.rel)); err != nil {
		return err.Error()
	}
	return ""
}

// replaceWith puts src in place of dst/rel by rename (a new inode), as a
// restore or a careless copy would.
func replaceWith(src []byte, dst, rel string) string {
	p := filepath.Join(dst, rel)
	tmp := p + ".campaign"
	if err := os.WriteFile(tmp, src, 0o644); err != nil {
		return err.Error()
	}
	if err := os.Rename(tmp, p); err != nil {
		return err.Error()
	}
	return ""
}

func foreignFile(_, other *campaignJournal, dst string, tg campaignTarget) string {
	b, err := os.ReadFile(filepath.Join(other.dir, tg.rel))
	if err != nil {
		return "the other journal has no " + tg.rel
	}
	cur, _ := os.ReadFile(filepath.Join(dst, tg.rel))
	if bytes.Equal(b, cur) {
		return "the other journal's file is byte-identical"
	}
	return replaceWith(b, dst, tg.rel)
}

// staleFile puts back the newest earlier version of the file that
// differs from the current one.
func staleFile(cj, _ *campaignJournal, dst string, tg campaignTarget) string {
	cur, curErr := os.ReadFile(filepath.Join(cj.dir, tg.rel))
	for i := len(cj.snaps) - 1; i >= 0; i-- {
		b, err := os.ReadFile(filepath.Join(cj.snaps[i], tg.rel))
		if err != nil || (curErr == nil && bytes.Equal(b, cur)) {
			continue
		}
		return replaceWith(b, dst, tg.rel)
	}
	return "no earlier version differs"
}

func campaignDamages(full bool) []campaignDamage {
	flips := []float64{0.5, 0.9}
	cuts := []float64{0, 0.5}
	if full {
		flips = []float64{0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99}
		cuts = []float64{0, 0.1, 0.5, 0.9, 1}
	}
	var ds []campaignDamage
	for _, f := range flips {
		ds = append(ds, campaignDamage{fmt.Sprintf("flip %g%%", f*100), flipAt(f)})
	}
	ds = append(ds, campaignDamage{"flip digit", flipDigit})
	for _, c := range cuts {
		name := fmt.Sprintf("cut %g%%", c*100)
		if c == 1 {
			name = "cut last byte"
		}
		ds = append(ds, campaignDamage{name, cutAt(c)})
	}
	return append(ds, campaignDamage{"delete", deleteFile}, campaignDamage{"foreign", foreignFile}, campaignDamage{"stale", staleFile})
}

// stepResult is what one step of the script answered.
type stepResult struct {
	name   string
	err    string
	answer string // digest of the answer; compared with the clean twin's
	detail string // a readable form of the answer, for diffs
	recs   []string
}

// campaignScript is the sequence of operations every cell runs.
type campaignScript struct {
	retries []Change // writer-id changes retried with the same content
	start   time.Time
}

type session struct {
	steps    []stepResult
	reported []string // reports naming things, from this session's open
}

func recsOf(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%d %s %s %s %s", c.Sequence, c.EventID, c.Surface, c.ChangeType, c.OccurredAt.UTC().Format(TimeLayout))
	}
	return out
}

func digest(lines []string) string {
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func (s *session) add(r stepResult) { s.steps = append(s.steps, r) }

func (s *session) query(j *Journal, name string, q Query) {
	res, err := j.Query(context.Background(), q)
	if err != nil {
		s.add(stepResult{name: name, err: err.Error()})
		return
	}
	recs := recsOf(res.Changes)
	s.add(stepResult{name: name, answer: fmt.Sprintf("n=%d head=%d horizon=%d more=%t %s", len(recs), res.Head, res.Horizon, res.More, digest(recs)),
		detail: fmt.Sprintf("%d records, head %d, horizon %d", len(recs), res.Head, res.Horizon), recs: recs})
}

// queries runs the read steps: a full scan from cursor 0 and the status
// always; then queries by surface (level 1), by change type (2) and by
// correlation id (3).
func (s *session) queries(j *Journal, prefix string, level int) {
	s.query(j, prefix+"scan", Query{After: 0, Limit: -1})
	if level >= 1 {
		s.query(j, prefix+"newest", Query{NewestFirst: true, Limit: 20})
		for _, cs := range campaignSurfaces[1:3] {
			s.query(j, prefix+"surface "+cs.surface, Query{Surfaces: []string{cs.surface}, Limit: -1})
		}
	}
	if level >= 2 {
		s.query(j, prefix+"type updated", Query{ChangeTypes: []string{"updated"}, Limit: -1})
	}
	if level >= 3 {
		s.query(j, prefix+"correlation", Query{CorrelationID: "corr-2", Limit: -1})
	}
	st := j.Status()
	var b strings.Builder
	fmt.Fprintf(&b, "first=%d last=%d records=%d horizon=%d archived=%d damaged=%d", st.FirstSequence, st.LastSequence, st.Records, st.Horizon, st.ArchiveRecords, len(st.DamagedArchives))
	for _, ss := range st.Surfaces {
		if ss.Records > 0 {
			fmt.Fprintf(&b, " %s:%d@%d/%s", ss.ID, ss.Records, ss.LastSequence, ss.LastChangeType)
		}
	}
	r := stepResult{name: prefix + "status", answer: b.String(), detail: b.String()}
	// What Status reports about damage (failed, damaged_archives, holes,
	// whatever this build has) is its way of naming it: read it from the
	// JSON, so the test follows the fields the engine grows.
	var fields map[string]json.RawMessage
	if js, err := json.Marshal(st); err == nil && json.Unmarshal(js, &fields) == nil {
		var reps []string
		for _, k := range []string{"failed", "damaged_archives", "holes", "problems", "integrity"} {
			if v, ok := fields[k]; ok && string(v) != "null" && string(v) != `""` && string(v) != "[]" {
				reps = append(reps, k+": "+string(v))
			}
		}
		r.err = strings.Join(reps, "; ")
	}
	s.add(r)
}

// noteRecovery keeps the recovery record of this session's open, if the
// open recovered something: a report the classification may credit.
func (s *session) noteRecovery(j *Journal, since time.Time) {
	if rec := j.Status().LastRecovery; rec != nil && !rec.At.Before(since) {
		b, _ := json.Marshal(rec)
		s.reported = append(s.reported, string(b))
	}
}

// run runs the script on dir: a read-only session, a writer session with
// retries, a new record and a compaction, a reopen, and validate.
func (sc *campaignScript) run(dir string, logs io.Writer) []*session {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := []Option{WithSegmentSize(campaignSegment), WithSync(SyncNone), WithLogger(logger)}
	var out []*session

	ro := &session{}
	out = append(out, ro)
	if j, err := Open(dir, append(opts, ReadOnly())...); err != nil {
		ro.add(stepResult{name: "ro open", err: err.Error()})
	} else {
		ro.add(stepResult{name: "ro open", answer: "ok"})
		ro.queries(j, "ro ", 2)
		j.Close()
	}

	w := &session{}
	out = append(out, w)
	since := time.Now()
	if j, err := Open(dir, opts...); err != nil {
		w.add(stepResult{name: "w open", err: err.Error()})
	} else {
		w.noteRecovery(j, since)
		w.add(stepResult{name: "w open", answer: "ok"})
		w.queries(j, "w ", 3)
		for _, c := range sc.retries {
			name := "w retry " + c.EventID
			c.Sequence = 0
			rc, err := j.Record(ctx, c)
			if err != nil {
				w.add(stepResult{name: name, err: err.Error()})
				continue
			}
			a := fmt.Sprintf("sequence=%d duplicate=%t", rc.Sequence, rc.Duplicate)
			w.add(stepResult{name: name, answer: a, detail: a})
		}
		c := campaignChange(sc.start, "new", 0) // a writer-supplied id and time: comparable
		if rc, err := j.Record(ctx, c); err != nil {
			w.add(stepResult{name: "w new record", err: err.Error()})
		} else {
			a := fmt.Sprintf("sequence=%d duplicate=%t", rc.Sequence, rc.Duplicate)
			w.add(stepResult{name: "w new record", answer: a, detail: a})
		}
		if rep, err := j.Compact(ctx, CompactOptions{}); err != nil {
			w.add(stepResult{name: "w compact", err: err.Error()})
		} else {
			var names []string
			for _, a := range rep.Archives {
				names = append(names, fmt.Sprintf("%d..%d:%d+%d", a.FirstSequence, a.LastSequence, a.Records, a.Coalesced))
			}
			a := fmt.Sprintf("archives=%v records=%d coalesced=%d removed=%d horizon %d->%d", names, rep.Records, rep.Coalesced, len(rep.Removed), rep.HorizonBefore, rep.HorizonAfter)
			w.add(stepResult{name: "w compact", answer: a, detail: a})
		}
		w.queries(j, "w after compact ", 0)
		if err := j.Close(); err != nil {
			w.add(stepResult{name: "w close", err: err.Error()})
		}
	}

	w2 := &session{}
	out = append(out, w2)
	since = time.Now()
	if j, err := Open(dir, opts...); err != nil {
		w2.add(stepResult{name: "reopen", err: err.Error()})
	} else {
		w2.noteRecovery(j, since)
		w2.add(stepResult{name: "reopen", answer: "ok"})
		w2.queries(j, "reopen ", 1)
		j.Close()
	}

	v := &session{}
	out = append(out, v)
	rep, err := ValidateDir(ctx, dir, ValidateOptions{})
	if err != nil {
		v.add(stepResult{name: "validate", err: err.Error()})
	} else {
		a := fmt.Sprintf("clean=%t records=%d archived=%d archives=%d first=%d last=%d coalesced=%d", rep.Clean, rep.Records, rep.ArchiveRecords, rep.ArchiveSegments, rep.FirstSequence, rep.LastSequence, rep.Coalesced)
		r := stepResult{name: "validate", answer: a, detail: a}
		var probs []string
		for _, p := range rep.Problems {
			if p.Severity == SeverityInfo {
				continue
			}
			probs = append(probs, fmt.Sprintf("%s %s %s seq %d: %s", p.Severity, p.Kind, p.Segment, p.Sequence, p.Message))
		}
		if !rep.Clean {
			r.err = strings.Join(probs, "; ")
		}
		v.add(r)
	}
	return out
}

// Outcomes of a cell.
const (
	outIdentical = "identical"
	outReported  = "reported"
	outUnnamed   = "UNNAMED ERROR"
	outSilent    = "SILENT LOSS"
	outWrong     = "WRONG ANSWER"
	outNA        = "n/a"
)

// cellResult is the outcome of one kind x damage cell.
type cellResult struct {
	kind, damage, rel string
	outcome           string
	why               string   // first offending step, or the n/a reason
	notes             []string // every step that differed from the clean twin
	logs              string
}

var seqRE = regexp.MustCompile(`\d+`)

// names reports whether text names the target: its file name, or (for
// files that hold records) a sequence inside its range.
func (tg campaignTarget) named(text string) bool {
	if text == "" {
		return false
	}
	if strings.Contains(text, filepath.Base(tg.rel)) {
		return true
	}
	if tg.first == 0 {
		return false
	}
	for _, m := range seqRE.FindAllString(text, -1) {
		if n, err := strconv.ParseUint(m, 10, 64); err == nil && n >= tg.first && n <= tg.last && len(m) < 20 {
			return true
		}
	}
	return false
}

// classify compares the damaged run with the clean twin's.
func classify(tg campaignTarget, clean, got []*session) (string, string, []string) {
	outcome := outIdentical
	var why string
	var notes []string
	worse := func(o, w string) {
		rank := map[string]int{outIdentical: 0, outReported: 1, outUnnamed: 2, outWrong: 3, outSilent: 4}
		if rank[o] > rank[outcome] {
			outcome, why = o, w
		}
	}
	// A recovery record naming the file (a persistent report of what an
	// open cut) excuses every later differing answer, losses included. An
	// error naming the file reports its step, and excuses later answers of
	// the same session that differ without losing records (a retry of a
	// record in a reported hole written anew, a horizon shown lower beside
	// a reported hole). An answer that loses event ids of the clean twin's
	// answer without an error or a recovery is a silent loss, whatever was
	// reported before it: compaction dropping the rest of a damaged segment
	// after a read reported the damage is exactly that.
	recovered := false
	for si, s := range got {
		want := map[string]stepResult{}
		for _, r := range clean[si].steps {
			want[r.name] = r
		}
		for _, r := range s.reported {
			if tg.named(r) {
				recovered = true
			}
		}
		named := false
		for _, r := range s.steps {
			w, ok := want[r.name]
			if ok && r.err == w.err && r.answer == w.answer {
				continue
			}
			if r.err != "" {
				if tg.named(r.err) {
					notes = append(notes, fmt.Sprintf("%s: reported: %s", r.name, campaignClip(r.err, 300)))
					worse(outReported, r.name)
					named = true
				} else {
					notes = append(notes, fmt.Sprintf("%s: error not naming %s: %s", r.name, filepath.Base(tg.rel), campaignClip(r.err, 300)))
					worse(outUnnamed, r.name)
				}
				continue
			}
			d := fmt.Sprintf("%s: %s; clean twin: %s", r.name, r.detail, w.detail)
			if w.err != "" {
				d = fmt.Sprintf("%s: %s; clean twin failed: %s", r.name, r.detail, campaignClip(w.err, 200))
			}
			lost, extra := diffRecs(w.recs, r.recs)
			if len(lost) > 0 || len(extra) > 0 {
				d += fmt.Sprintf(" — differing records: clean twin's %d %s, this run's %d %s", len(lost), sample(lost), len(extra), sample(extra))
			}
			gone := lostIDs(w.recs, r.recs)
			if strings.HasSuffix(r.name, "newest") {
				gone = nil // a window: a shifted head moves records out of it
			}
			if len(gone) > 0 {
				d += fmt.Sprintf(" — %d event ids of the clean twin's answer are absent %s", len(gone), sample(gone))
			}
			switch {
			case recovered:
				notes = append(notes, "differs after a recovery that named the file: "+d)
				worse(outReported, r.name)
			case len(gone) > 0:
				notes = append(notes, d)
				worse(outSilent, r.name)
			case named:
				notes = append(notes, "differs after this session reported the file: "+d)
				worse(outReported, r.name)
			default:
				notes = append(notes, d)
				worse(outWrong, r.name)
			}
		}
	}
	return outcome, why, notes
}

func diffRecs(want, got []string) (lost, extra []string) {
	g := make(map[string]bool, len(got))
	for _, r := range got {
		g[r] = true
	}
	w := make(map[string]bool, len(want))
	for _, r := range want {
		w[r] = true
		if !g[r] {
			lost = append(lost, r)
		}
	}
	for _, r := range got {
		if !w[r] {
			extra = append(extra, r)
		}
	}
	return lost, extra
}

// lostIDs returns the clean answer's records whose event id the damaged
// answer does not hold at all: a loss, not a move or a duplicate.
func lostIDs(want, got []string) []string {
	ids := make(map[string]bool, len(got))
	for _, r := range got {
		ids[strings.Fields(r)[1]] = true
	}
	var out []string
	for _, r := range want {
		if !ids[strings.Fields(r)[1]] {
			out = append(out, r)
		}
	}
	return out
}

func sample(rs []string) string {
	if len(rs) == 0 {
		return ""
	}
	seqs := make([]string, 0, 4)
	for _, r := range rs[:min(len(rs), 3)] {
		seqs = append(seqs, strings.SplitN(r, " ", 2)[0])
	}
	s := "(seq " + strings.Join(seqs, ",")
	if len(rs) > 3 {
		s += ",…," + strings.SplitN(rs[len(rs)-1], " ", 2)[0]
	}
	return s + ")"
}

func campaignClip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// campaignRetries picks writer-supplied changes to retry: one archived,
// one in a sealed hot segment, one in the active segment, one below the
// horizon (retention removed it).
func campaignRetries(t *testing.T, cj *campaignJournal) []Change {
	t.Helper()
	as := campaignArchives(t, cj.dir)
	segs, _, _ := segment.ListHotSegments(filepath.Join(cj.dir, "hot"))
	j, err := Open(cj.dir, ReadOnly(), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	horizon := j.Status().Horizon
	j.Close()
	pick := func(lo, hi uint64) *Change {
		var best *Change
		for _, c := range cj.written {
			if c.Sequence >= lo && c.Sequence <= hi && (best == nil || c.Sequence < best.Sequence) {
				c := c
				best = &c
			}
		}
		return best
	}
	mid := as[len(as)/2]
	cands := []*Change{
		pick(1, horizon-1),
		pick(mid.first, mid.last),
		pick(segs[0].FirstSeq, segs[1].FirstSeq-1),
		pick(segs[len(segs)-1].FirstSeq, 1<<62),
	}
	var out []Change
	for i, c := range cands {
		if c == nil {
			t.Fatalf("no writer-supplied record to retry in range %d", i)
		}
		out = append(out, *c)
	}
	return out
}

// campaignEnv builds the two template journals once per test binary run.
type campaignEnv struct {
	a, b    *campaignJournal
	script  *campaignScript
	clean   []*session
	targets []campaignTarget
}

func newCampaignEnv(t *testing.T) *campaignEnv {
	t.Helper()
	root := t.TempDir()
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	a := buildCampaignJournal(t, filepath.Join(root, "a"), filepath.Join(root, "snaps-a"), base)
	b := buildCampaignJournal(t, filepath.Join(root, "b"), filepath.Join(root, "snaps-b"), base)
	env := &campaignEnv{a: a, b: b, script: &campaignScript{retries: campaignRetries(t, a), start: base}}
	twin := filepath.Join(root, "twin")
	copyDir(t, a.dir, twin)
	var logs bytes.Buffer
	env.clean = env.script.run(twin, &logs)
	for _, s := range env.clean {
		for _, r := range s.steps {
			if r.err != "" {
				t.Fatalf("the clean twin fails at %s: %s\nlogs:\n%s", r.name, r.err, logs.String())
			}
		}
	}
	env.targets = campaignTargets(t, a)
	return env
}

// runCell damages a copy of the template and classifies the run.
func (env *campaignEnv) runCell(t *testing.T, tg campaignTarget, d campaignDamage) cellResult {
	cr := cellResult{kind: tg.kind, damage: d.name, rel: tg.rel}
	if tg.onlyStale && d.name != "stale" {
		cr.outcome, cr.why = outNA, "the file is not in the journal"
		return cr
	}
	dir := filepath.Join(t.TempDir(), "j")
	copyDir(t, env.a.dir, dir)
	if tg.onlyStale {
		// Put back the archive retention removed.
		for _, s := range env.a.snaps {
			if b, err := os.ReadFile(filepath.Join(s, tg.rel)); err == nil {
				if why := replaceWith(b, dir, tg.rel); why != "" {
					t.Fatal(why)
				}
				break
			}
		}
	} else if why := d.apply(env.a, env.b, dir, tg); why != "" {
		cr.outcome, cr.why = outNA, why
		return cr
	}
	var logs bytes.Buffer
	got := env.script.run(dir, &logs)
	cr.outcome, cr.why, cr.notes = classify(tg, env.clean, got)
	for i := range cr.notes {
		cr.notes[i] = strings.ReplaceAll(cr.notes[i], dir+string(filepath.Separator), "")
	}
	cr.logs = strings.ReplaceAll(logs.String(), dir+string(filepath.Separator), "")
	return cr
}

func campaignFull() bool { return os.Getenv("SJ_CAMPAIGN_FULL") == "1" }

func TestDamageCampaignEveryFileKindEveryDamageIsIdenticalOrReported(t *testing.T) {
	start := time.Now()
	env := newCampaignEnv(t)
	damages := campaignDamages(campaignFull())
	var (
		mu      sync.Mutex
		results []cellResult
	)
	t.Run("cells", func(t *testing.T) {
		for _, tg := range env.targets {
			t.Run(tg.kind, func(t *testing.T) {
				t.Parallel()
				for _, d := range damages {
					cr := env.runCell(t, tg, d)
					mu.Lock()
					results = append(results, cr)
					mu.Unlock()
				}
			})
		}
	})
	held := campaignHeldLock(t, env)
	results = append(results, held...)
	table := campaignTable(env.targets, damages, results)
	t.Logf("damage campaign: %d cells in %s\n%s", len(results), time.Since(start).Round(time.Millisecond), table)
	if p := os.Getenv("SJ_CAMPAIGN_TABLE"); p != "" {
		if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
			t.Errorf("write the table to %s: %v", p, err)
		}
	}
	for _, cr := range results {
		switch cr.outcome {
		case outSilent, outWrong, outUnnamed:
			t.Errorf("%s / %s (%s): %s at %q\n  %s\n  logs: %s", cr.kind, cr.damage, cr.rel, cr.outcome, cr.why,
				strings.Join(cr.notes, "\n  "), campaignClip(strings.TrimSpace(cr.logs), 600))
		}
	}
}

// campaignTable renders the outcomes as a markdown table, then the
// details of every cell that is not identical.
func campaignTable(targets []campaignTarget, damages []campaignDamage, results []cellResult) string {
	by := map[string]cellResult{}
	var kinds []string
	seen := map[string]bool{}
	for _, tg := range targets {
		kinds = append(kinds, tg.kind)
		seen[tg.kind] = true
	}
	cols := []string{}
	for _, d := range damages {
		cols = append(cols, d.name)
	}
	for _, cr := range results {
		by[cr.kind+"\x00"+cr.damage] = cr
		if !seen[cr.kind] {
			kinds = append(kinds, cr.kind)
			seen[cr.kind] = true
		}
		if !slices.Contains(cols, cr.damage) {
			cols = append(cols, cr.damage)
		}
	}
	var b strings.Builder
	counts := map[string]int{}
	fmt.Fprintf(&b, "# Damage campaign\n\n%s. Outcome per cell: identical = every answer equals the clean twin's; reported = the damage is named by an error, a recovery record or a validate problem; SILENT LOSS = an acknowledged record missing with no report; WRONG ANSWER = an answer that differs with no report; UNNAMED ERROR = an error that does not name the file; n/a = the damage does not apply.\n\n",
		time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "| kind | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, k := range kinds {
		fmt.Fprintf(&b, "| %s |", k)
		for _, c := range cols {
			cr, ok := by[k+"\x00"+c]
			switch {
			case !ok:
				b.WriteString(" |")
			case cr.outcome == outSilent || cr.outcome == outWrong || cr.outcome == outUnnamed:
				fmt.Fprintf(&b, " **%s** |", cr.outcome)
			default:
				fmt.Fprintf(&b, " %s |", cr.outcome)
			}
			if ok {
				counts[cr.outcome]++
			}
		}
		b.WriteString("\n")
	}
	var cs []string
	for _, o := range []string{outIdentical, outReported, outSilent, outWrong, outUnnamed, outNA} {
		cs = append(cs, fmt.Sprintf("%s %d", o, counts[o]))
	}
	fmt.Fprintf(&b, "\nTotals: %s\n\n## Cells that are not identical\n\n", strings.Join(cs, ", "))
	for _, k := range kinds {
		for _, c := range cols {
			cr, ok := by[k+"\x00"+c]
			if !ok || cr.outcome == outIdentical || cr.outcome == outNA {
				continue
			}
			fmt.Fprintf(&b, "* **%s / %s** (`%s`): %s at `%s`\n", cr.kind, cr.damage, cr.rel, cr.outcome, cr.why)
			for _, n := range cr.notes[:min(len(cr.notes), 6)] {
				fmt.Fprintf(&b, "  * %s\n", strings.ReplaceAll(campaignClip(n, 400), "\n", " "))
			}
			if len(cr.notes) > 6 {
				fmt.Fprintf(&b, "  * … %d more steps differ\n", len(cr.notes)-6)
			}
		}
	}
	return b.String()
}

// campaignHeldLock damages LOCK under a live writer: the second writer
// must be refused (ErrLocked), or the first must stop writing with an
// error that says its lock is gone; never two writers acknowledging
// records in one directory.
func campaignHeldLock(t *testing.T, env *campaignEnv) []cellResult {
	kind := "LOCK (held by a live writer)"
	var out []cellResult
	for _, d := range campaignDamages(campaignFull()) {
		cr := cellResult{kind: kind, damage: d.name, rel: fsx.LockFileName}
		dir := filepath.Join(t.TempDir(), "j")
		copyDir(t, env.a.dir, dir)
		var logs bytes.Buffer
		opts := []Option{WithSegmentSize(campaignSegment), WithSync(SyncNone), WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))}
		j1, err := Open(dir, opts...)
		if err != nil {
			t.Fatalf("held LOCK: open the first writer: %v", err)
		}
		tg := campaignTarget{kind: kind, rel: fsx.LockFileName}
		// The held LOCK holds j1's holder JSON, the stale one a killed
		// writer's, the foreign one another journal's.
		if why := d.apply(env.a, env.b, dir, tg); why != "" {
			j1.Close()
			cr.outcome, cr.why = outNA, why
			out = append(out, cr)
			continue
		}
		acked := map[uint64]string{}
		var conflicts []string
		write := func(j *Journal, who string, i int) error {
			c := campaignChange(env.script.start, who, i)
			c.EventID = fmt.Sprintf("lock-%s-%d", who, i)
			c.OccurredAt = time.Now()
			rc, err := j.Record(context.Background(), c)
			if err != nil {
				return err
			}
			if prev, dup := acked[rc.Sequence]; dup {
				conflicts = append(conflicts, fmt.Sprintf("sequence %d acknowledged to %s and %s", rc.Sequence, prev, c.EventID))
			}
			acked[rc.Sequence] = c.EventID
			return nil
		}
		var j1Err error
		for i := 0; i < 3 && j1Err == nil; i++ {
			j1Err = write(j1, "one", i)
		}
		j2, err2 := Open(dir, opts...)
		var j2Err error
		for i := 0; i < 6; i++ {
			if j1Err == nil {
				j1Err = write(j1, "one", 10+i)
			}
			if err2 == nil && j2Err == nil {
				j2Err = write(j2, "two", i)
			}
		}
		j1.Close()
		if err2 == nil {
			j2.Close()
		}
		// Every acknowledged record must be readable at its sequence.
		var lost []string
		if j, err := Open(dir, append(opts, ReadOnly())...); err != nil {
			lost = append(lost, "reopen read-only: "+err.Error())
		} else {
			res, err := j.Query(context.Background(), Query{Limit: -1})
			if err != nil {
				lost = append(lost, "scan: "+err.Error())
			}
			have := map[uint64]string{}
			for _, c := range res.Changes {
				have[c.Sequence] = c.EventID
			}
			for seq, id := range acked {
				if have[seq] != id {
					lost = append(lost, fmt.Sprintf("%s acknowledged at %d, read %q there", id, seq, have[seq]))
				}
			}
			j.Close()
		}
		switch {
		case len(lost) > 0 || len(conflicts) > 0:
			cr.outcome, cr.why = outSilent, "two writers"
			cr.notes = append(append(conflicts, lost...), fmt.Sprintf("second open: %v; first writer's last error: %v; second writer's: %v", err2, j1Err, j2Err))
		case errors.Is(err2, ErrLocked) && j1Err == nil:
			cr.outcome, cr.why = outIdentical, "second writer refused with ErrLocked"
		case errors.Is(err2, ErrLocked) && j1Err != nil && strings.Contains(strings.ToLower(j1Err.Error()), "lock"):
			cr.outcome, cr.why = outReported, "second writer refused, first writer stopped: lock lost"
			cr.notes = []string{"first writer: " + j1Err.Error()}
		case err2 == nil && j1Err != nil && strings.Contains(strings.ToLower(j1Err.Error()), "lock"):
			cr.outcome, cr.why = outReported, "first writer stopped: lock lost"
			cr.notes = []string{"first writer: " + j1Err.Error()}
		case err2 == nil && j1Err == nil:
			cr.outcome, cr.why = outSilent, "two writers acknowledged records in one directory"
			cr.notes = []string{fmt.Sprintf("first writer and second writer both wrote; %d records acknowledged", len(acked))}
		default:
			cr.outcome, cr.why = outUnnamed, "unexpected"
			cr.notes = []string{fmt.Sprintf("second open: %v; first writer: %v; second writer: %v", err2, j1Err, j2Err)}
		}
		cr.logs = logs.String()
		out = append(out, cr)
	}
	return out
}
