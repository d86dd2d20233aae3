package engine

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/agentruntime/statejournal/internal/fsx"
	"github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/types"
)

// Status is a snapshot of the journal's state, stable as JSON.
type Status struct {
	Dir             string     `json:"dir"`
	JournalID       string     `json:"journal_id,omitempty"` // state/identity.json; empty in a step-4 directory until its first writable open
	ReadOnly        bool       `json:"read_only"`
	SyncPolicy      SyncPolicy `json:"sync_policy"`
	FirstSequence   uint64     `json:"first_sequence"` // oldest readable sequence (the horizon)
	LastSequence    uint64     `json:"last_sequence"`  // newest committed sequence, 0 when empty
	DurableSequence uint64     `json:"durable_sequence"`
	Records         uint64     `json:"records"`
	HotRecords      uint64     `json:"hot_records"`
	HotBytes        int64      `json:"hot_bytes"`
	HotSegments     int        `json:"hot_segments"`
	SegmentSize     int        `json:"segment_size"`
	Horizon         uint64     `json:"horizon"`
	ArchiveRecords  uint64     `json:"archive_records"`
	ArchiveBytes    int64      `json:"archive_bytes"`
	ArchiveSegments int        `json:"archive_segments"`
	DamagedArchives []string   `json:"damaged_archives,omitempty"`
	// Holes lists the sequence ranges between the horizon and the head
	// that no file holds; a read that crosses one fails with ErrHole.
	Holes            []string           `json:"holes,omitempty"`
	Coalesced        uint64             `json:"coalesced"`
	ArchiveInput     int64              `json:"archive_input_bytes"`
	CompressionRatio float64            `json:"compression_ratio"`
	LastCompaction   *CompactionSummary `json:"last_compaction,omitempty"`
	// CompactionFailure and CheckpointFailure report the last failed
	// compaction and index checkpoint until one succeeds; neither stops
	// the hot log.
	CompactionFailure *CompactionFailure `json:"compaction_failure,omitempty"`
	CheckpointFailure *CompactionFailure `json:"checkpoint_failure,omitempty"`
	Retention         Retention          `json:"retention"`
	Fsyncs            uint64             `json:"fsyncs"`
	Batches           uint64             `json:"batches"`
	Appended          uint64             `json:"appended"`
	AsyncDropped      uint64             `json:"async_dropped"`
	DedupeWindow      string             `json:"dedupe_window"`
	DedupeIDs         int                `json:"dedupe_ids,omitempty"`
	IndexBytes        int64              `json:"index_bytes"`
	Failed            string             `json:"failed,omitempty"`
	// LockLost is true when the LOCK file was removed or replaced under
	// this writer: it refuses writes and has released the directory.
	LockLost       bool            `json:"lock_lost,omitempty"`
	Writer         *fsx.Holder     `json:"writer,omitempty"`
	LastRecovery   *Recovery       `json:"last_recovery,omitempty"`
	RegistryDigest string          `json:"registry_digest"`
	Surfaces       []SurfaceStatus `json:"surfaces"`
}

// SurfaceStatus is the live figure of one surface.
type SurfaceStatus struct {
	ID             string     `json:"id"`
	Records        uint64     `json:"records"`
	LastSequence   uint64     `json:"last_sequence,omitempty"`
	LastAt         *time.Time `json:"last_at,omitempty"`
	LastChangeType string     `json:"last_change_type,omitempty"`
	LastSeverity   string     `json:"last_severity,omitempty"`
}

// Status reports the journal's figures. It does not block writers.
func (j *Journal) Status() Status {
	v := j.view.Load()
	st := Status{
		Dir:             j.dir,
		ReadOnly:        j.opts.readOnly,
		SyncPolicy:      j.opts.sync,
		FirstSequence:   v.first,
		HotRecords:      uint64(len(v.entries)),
		HotBytes:        v.bytes,
		HotSegments:     len(v.segs),
		SegmentSize:     j.opts.segmentSize,
		Fsyncs:          j.fsyncs.Load(),
		Batches:         j.batches.Load(),
		Appended:        j.appended.Load(),
		AsyncDropped:    j.asyncDropped.Load(),
		DurableSequence: j.durableSeq.Load(),
		DedupeWindow:    types.FormatDuration(j.opts.dedupeWindow),
		DedupeIDs:       int(j.dedupeIDs.Load()),
		IndexBytes:      int64(cap(v.entries)) * int64(unsafe.Sizeof(hotEntry{})),
		LastRecovery:    j.recovery,
		RegistryDigest:  j.opts.registry.Digest(),
	}
	if j.ident != nil {
		st.JournalID = j.ident.JournalID
	}
	if len(v.entries) > 0 {
		st.LastSequence = v.last()
	} else if v.first > 0 {
		st.LastSequence = v.first - 1
	}
	st.Horizon = v.horizon()
	st.FirstSequence = st.Horizon
	st.ArchiveSegments = archiveFiles(v.archives)
	for _, a := range v.archives {
		if a.hole {
			st.Holes = append(st.Holes, a.err.Error())
			continue
		}
		st.ArchiveBytes += a.bytes
		if a.err != nil {
			st.DamagedArchives = append(st.DamagedArchives, fmt.Sprintf("%s: %v", a.name, a.err))
			continue
		}
		st.ArchiveRecords += a.footer.Records
		st.Coalesced += a.footer.Coalesced
		st.ArchiveInput += a.footer.InputBytes
	}
	if st.ArchiveBytes > 0 {
		st.CompressionRatio = float64(st.ArchiveInput) / float64(st.ArchiveBytes)
	}
	st.LastCompaction = j.lastCompaction.Load()
	st.CompactionFailure = j.compactFail.Load()
	st.CheckpointFailure = j.checkpointFail.Load()
	st.Retention = j.opts.retention
	st.Records = st.HotRecords + st.ArchiveRecords
	if j.opts.readOnly {
		st.DurableSequence = st.LastSequence
	}
	if err := j.failure(); err != nil {
		st.Failed = err.Error()
		st.LockLost = j.lockLost.Load()
	}
	if held, h := fsx.HeldBy(j.dir); held {
		st.Writer = h
	}
	st.Surfaces = j.surfaceStatuses(v)
	return st
}

func (j *Journal) surfaceStatuses(v *view) []SurfaceStatus {
	var out []SurfaceStatus
	seen := map[string]bool{}
	add := func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		ss := SurfaceStatus{ID: id}
		if sid, ok := j.intern.lookup(id); ok && int(sid) < len(v.surf) {
			s := v.surf[sid]
			ss.Records = s.Records
			if s.Records > 0 {
				ss.LastSequence = s.LastSequence
				t := time.Unix(0, s.LastUnix).UTC()
				ss.LastAt = &t
				// Codes from the index (and its checkpoint): fixed by record.
				ss.LastChangeType, _ = record.ChangeTypeName(s.LastChangeType)
				ss.LastSeverity, _ = record.SeverityName(s.LastSeverity)
			}
		}
		out = append(out, ss)
	}
	for _, s := range j.opts.registry.Surfaces() {
		add(s.ID)
	}
	// Surfaces in the log that the current registry no longer declares.
	for i := range v.surf {
		if v.surf[i].Records > 0 && uint16(i) != j.lostID {
			add(j.intern.name(uint16(i)))
		}
	}
	return out
}
