package engine

// RetentionFloor holds retention back from records a consumer outside
// the journal has not taken yet (the NATS relay: records it has not
// shipped). Retention by age and by record count never removes an archive
// that holds a record above the floor; only the byte budget (MaxBytes)
// may, because a full disk would stop the writers, and then the loss is
// reported: RemovedArchive.Unshipped, a warning in the log and Dropped.
//
// The floor is asked once per retention plan, in the real run and in the
// dry run alike, so a dry run predicts what the floor holds back.
type RetentionFloor struct {
	// Name says what holds retention back, for logs ("relay").
	Name string
	// Shipped returns the highest sequence the consumer has taken (every
	// record up to it) in the journal journalID (state/identity.json, so
	// a consumer's state file can be checked against it; "none" before
	// the journal has an identity). An error holds every archive back
	// (the safe side: nothing is known to be taken) and is logged.
	Shipped func(journalID string) (uint64, error)
	// Dropped, when set, is called after retention removed, because
	// MaxBytes forced it, an archive holding records above the floor;
	// a.Unshipped counts them. It runs on the compaction's goroutine.
	Dropped func(a RemovedArchive)
}

// WithRetentionFloor makes retention keep what f has not taken (see
// RetentionFloor).
func WithRetentionFloor(f RetentionFloor) Option { return func(o *options) { o.floor = &f } }

// retentionFloor returns the floor for one retention plan: held is false
// when no floor is configured.
func (j *Journal) retentionFloor() (shipped uint64, held bool) {
	f := j.opts.floor
	if f == nil || f.Shipped == nil {
		return 0, false
	}
	s, err := f.Shipped(j.ident.idString())
	if err != nil {
		j.log.Warn("retention: the floor cannot be read; archives past the age and record limits are kept, only the byte budget removes them",
			"floor", f.Name, "err", err)
		return 0, true
	}
	return s, true
}

// unshippedIn counts the records of archive a above the floor (at most:
// sequences that coalescing dropped are not told apart).
func unshippedIn(a retArchive, shipped uint64, held bool) uint64 {
	if !held || shipped >= a.last {
		return 0
	}
	if shipped < a.first {
		return a.records
	}
	return min(a.records, a.last-shipped)
}

// reportUnshipped says that retention removed records the floor had not
// taken: a warning naming the archive and the count, and Dropped.
func (j *Journal) reportUnshipped(a RemovedArchive) {
	f := j.opts.floor
	if a.Unshipped == 0 || f == nil {
		return
	}
	j.log.Warn("retention: the byte budget removed records that were never shipped",
		"floor", f.Name, "archive", a.Name, "first_sequence", a.FirstSequence, "last_sequence", a.LastSequence, "unshipped", a.Unshipped, "reason", a.Reason)
	if f.Dropped != nil {
		f.Dropped(a)
	}
}
