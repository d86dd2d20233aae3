package engine

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/agentruntime/statejournal/segment"
	"github.com/agentruntime/statejournal/types"
)

// Record identity.
//
// An event_id names one record in the whole journal. Two kinds exist:
//
//   - Writer-supplied ids are idempotency keys. They enter the dedupe
//     window with a hash of the record's content, so a retry with the same
//     content gets the first receipt (duplicate: true) and a reuse with
//     other content is an event_id_conflict. The window is counted from
//     the journal's commit time and rebuilt from the hot log and the
//     archives whenever the index checkpoint is not used.
//   - Journal-generated ids are UUIDv7s that name their own record: the
//     committer stamps them once the sequence is known, with the commit
//     time's milliseconds in the timestamp field and the low 44 bits of the
//     sequence in the "random" bits (rand_a and the top 32 bits of rand_b;
//     the last 30 bits are random so two journals committing the same
//     sequence in the same millisecond still differ):
//
//     hi = unix_ms(48) | 0x7(4) | seq[43:32](12)
//     lo = 0b10(2) | seq[31:0](32) | random(30)
//
//     They are not remembered (that is what kept memory bounded), yet a
//     writer who supplies one is caught: an id of that form points at one
//     sequence, so the journal reads that single record and compares. If
//     it holds the id, the write is a retry of a stored record (same
//     content: its receipt, duplicate: true) or a conflict; if not, the id
//     is an ordinary idempotency key that happens to parse (a random
//     UUIDv7 points at a stored record whose id it is not). Nothing is
//     refused on a guess, and the check costs one index lookup, plus one
//     record read only when the commit millisecond matches too.
//
// An id reused after its record left the dedupe window (by age or by the
// window's count bound) is not caught for writer-supplied ids: the window
// is the promise, documented with its size.

// generatedIDPlaceholder stands in for a journal-generated id in the
// encoding the writer's goroutine prepares; the committer overwrites it in
// place (same length) once it knows the sequence.
const generatedIDPlaceholder = "00000000-0000-7000-8000-000000000000"

// eventIDOffset is where the event_id string's characters start in every
// stored encoding: AppendJSON writes schema_version (always SchemaVersion
// by then) and event_id first.
var eventIDOffset = len(`{"schema_version":"` + SchemaVersion + `","event_id":"`)

const seqBits = 44

// appendGeneratedID appends the journal-generated id of the record with
// sequence seq committed at committed (unix nanos), in the canonical
// lowercase 8-4-4-4-12 form.
func appendGeneratedID(dst []byte, seq uint64, committed int64, rnd uint32) []byte {
	ms := uint64(committed/int64(time.Millisecond)) & (1<<48 - 1)
	s := seq & (1<<seqBits - 1)
	hi := ms<<16 | 0x7<<12 | (s>>32)&0xfff
	lo := uint64(0b10)<<62 | (s&0xffffffff)<<30 | uint64(rnd)&(1<<30-1)
	var raw [16]byte
	for i := 0; i < 8; i++ {
		raw[i] = byte(hi >> (56 - 8*i))
		raw[8+i] = byte(lo >> (56 - 8*i))
	}
	var out [36]byte
	hex.Encode(out[0:8], raw[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], raw[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], raw[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], raw[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], raw[10:16])
	return append(dst, out[:]...)
}

// parseGeneratedID decodes an id of the journal-generated form: the
// sequence's low 44 bits and the commit millisecond. ok is false for any
// other string (including upper-case hex: ids are compared as strings).
func parseGeneratedID(id string) (seqLow uint64, ms int64, ok bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return 0, 0, false
	}
	var raw [16]byte
	k := 0
	for i := 0; i < 36; i += 2 {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i--
			continue
		}
		hiN, ok1 := lowerHex(id[i])
		loN, ok2 := lowerHex(id[i+1])
		if !ok1 || !ok2 {
			return 0, 0, false
		}
		raw[k] = hiN<<4 | loN
		k++
	}
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(raw[i])
		lo = lo<<8 | uint64(raw[8+i])
	}
	if (hi>>12)&0xf != 7 || lo>>62 != 0b10 {
		return 0, 0, false
	}
	return (hi&0xfff)<<32 | (lo>>30)&0xffffffff, int64(hi >> 16), true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// isGeneratedFor reports whether id is the journal-generated id of the
// record with sequence seq committed at committed (unix nanos).
func isGeneratedFor(id string, seq uint64, committed int64) bool {
	low, ms, ok := parseGeneratedID(id)
	return ok && low == seq&(1<<seqBits-1) && ms == committed/int64(time.Millisecond)
}

// idRand is the committer's source of the random bits of generated ids.
func newIDRand() *rand.ChaCha8 {
	var seed [32]byte
	for i := 0; i < 4; i++ {
		v := rand.Uint64() // seeded from the OS by the runtime
		for k := 0; k < 8; k++ {
			seed[i*8+k] = byte(v >> (8 * k))
		}
	}
	return rand.NewChaCha8(seed)
}

// identity is what dedupe compares of a stored record: its id, its
// occurred_at, whether the writer supplied occurred_at, and a hash of the
// rest of its content.
//
// Same content means: the stored encoding after occurred_at is byte for
// byte the same (source, surface, change type, aggregate, changed
// surfaces, severity, snapshot hint, authority flag, optional strings and
// metadata, all after defaults, redaction and trimming), and, when both
// the first record and the retry carry a writer-supplied occurred_at,
// those are equal. A retry that leaves occurred_at out (the journal
// stamps its commit time) matches a first write that supplied one, and
// the other way round, so a writer that restamps nothing is never told
// its retry conflicts; sequence and commit time are the journal's and
// never part of the content. A stored occurred_at equal to the record's
// commit time to the nanosecond is taken as stamped by the journal.
type identity struct {
	id       string
	occurred int64
	hash     uint64
}

// sameContent reports whether a retry (hash, occurred, supplied) matches
// the stored record described by e.
func (e *dedupeEntry) sameContent(hash uint64, occurred int64, supplied bool) bool {
	if e.hash != hash {
		return false
	}
	return !supplied || !e.occSupplied() || e.occurred == occurred
}

// parseStoredIdentity reads id, occurred_at and the content hash from a
// stored encoding. The canonical form (what AppendJSON writes) is read in
// place; anything else is decoded and re-encoded first.
func parseStoredIdentity(payload []byte) (identity, error) {
	if id, ok := canonicalIdentity(payload); ok {
		return id, nil
	}
	c, err := decodeStored(payload, 0)
	if err != nil {
		return identity{}, err
	}
	enc, err := c.AppendJSON(nil, false)
	if err != nil {
		return identity{}, err
	}
	id, ok := canonicalIdentity(enc)
	if !ok {
		return identity{}, fmt.Errorf("record %s does not re-encode canonically", c.EventID)
	}
	return id, nil
}

var occurredKey = []byte(`","occurred_at":"`)

// canonicalEventID returns the event_id of a canonical stored encoding
// without parsing the rest.
func canonicalEventID(b []byte) (string, bool) {
	if len(b) < eventIDOffset || string(b[:eventIDOffset]) != `{"schema_version":"`+SchemaVersion+`","event_id":"` {
		return "", false
	}
	end := bytes.IndexByte(b[eventIDOffset:], '"')
	if end < 0 {
		return "", false
	}
	return string(b[eventIDOffset : eventIDOffset+end]), true
}

// canonicalIdentity parses the prefix AppendJSON writes:
// {"schema_version":"...","event_id":"<id>","occurred_at":"<TimeLayout>", and
// hashes the rest.
func canonicalIdentity(b []byte) (identity, bool) {
	if len(b) < eventIDOffset || string(b[:eventIDOffset]) != `{"schema_version":"`+SchemaVersion+`","event_id":"` {
		return identity{}, false
	}
	rest := b[eventIDOffset:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || !bytes.HasPrefix(rest[end:], occurredKey) {
		return identity{}, false
	}
	id := string(rest[:end])
	rest = rest[end+len(occurredKey):]
	if len(rest) < len(TimeLayout)+1 || rest[len(TimeLayout)] != '"' {
		return identity{}, false
	}
	t, err := time.Parse(TimeLayout, string(rest[:len(TimeLayout)]))
	if err != nil {
		return identity{}, false
	}
	return identity{id: id, occurred: t.UnixNano(), hash: contentHash(rest[len(TimeLayout)+1:])}, true
}

// newContentHash is the content hash of an encoding AppendJSON just
// wrote for an event_id of idLen bytes (token characters, never
// escaped), found by position instead of parsing.
func newContentHash(b []byte, idLen int) (uint64, bool) {
	at := eventIDOffset + idLen
	end := at + len(occurredKey) + len(TimeLayout) + 1
	if len(b) < end || string(b[at:at+len(occurredKey)]) != string(occurredKey) || b[end-1] != '"' {
		return 0, false
	}
	return contentHash(b[end:]), true
}

// contentHash is FNV-1a 64 of the stored encoding after occurred_at.
func contentHash(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// conflictError is the answer to a writer-supplied event_id that names a
// stored record with other content.
func conflictError(id string, seq uint64) *types.FieldError {
	return &types.FieldError{Kind: types.ErrEventIDConflict, Field: "event_id", Value: clip(id), Index: -1,
		Problem: fmt.Sprintf("already names sequence %d, whose content differs; an event_id names one record: "+
			"retry with exactly the same change, or give a new change a new event_id", seq)}
}

// generatedRecord checks a writer-supplied id of the journal-generated
// form against the one record it can name. It returns that record's
// receipt when the record holds the id with the same content, a
// conflict error when it holds the id with other content, and neither
// when the id names no stored record.
func (j *Journal) generatedRecord(id string, hash uint64, occurred int64, supplied bool) (*Receipt, error) {
	low, ms, ok := parseGeneratedID(id)
	if !ok {
		return nil, nil
	}
	for attempt := 0; ; attempt++ {
		v := j.view.Load()
		rc, err := j.generatedRecordIn(v, id, low, ms, hash, occurred, supplied)
		// A compaction may have moved the record out of a file this view
		// still names; the next view reads it from its new place.
		if err != nil && attempt < 3 && (errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrClosed) || errors.Is(err, segment.ErrArchiveClosed)) {
			time.Sleep(time.Millisecond)
			continue
		}
		return rc, err
	}
}

func (j *Journal) generatedRecordIn(v *view, id string, low uint64, ms int64, hash uint64, occurred int64, supplied bool) (*Receipt, error) {
	head := v.first - 1
	if len(v.entries) > 0 {
		head = v.last()
	}
	if head == 0 {
		return nil, nil
	}
	// The newest sequence at or below head with these low bits; older
	// ones sharing them are long gone (2^44 records later).
	seq := head&^(1<<seqBits-1) | low
	if seq > head {
		if seq < 1<<seqBits {
			return nil, nil
		}
		seq -= 1 << seqBits
	}
	if seq < v.horizon() || seq == 0 {
		return nil, nil
	}
	var (
		payload   []byte
		committed int64
		surface   string
	)
	if seq >= v.first {
		e := &v.entries[seq-v.first]
		if e.unix/int64(time.Millisecond) != ms || e.surface == j.lostID {
			return nil, nil
		}
		rd := newHotReader(v)
		defer rd.close()
		env, err := rd.readEnvelope(seq, e)
		if err != nil {
			return nil, fmt.Errorf("check event_id %s against sequence %d: %w", id, seq, err)
		}
		payload, committed, surface = env.Payload, e.unix, j.intern.name(e.surface)
	} else {
		i := sort.Search(len(v.archives), func(i int) bool { return v.archives[i].last >= seq })
		if i == len(v.archives) || v.archives[i].first > seq {
			return nil, nil
		}
		a := v.archives[i]
		if a.err == nil && (ms < a.footer.MinTime/int64(time.Millisecond) || ms > a.footer.MaxTime/int64(time.Millisecond)) {
			return nil, nil // no record of that millisecond there: no block to read
		}
		if a.err != nil {
			return nil, fmt.Errorf("check event_id %s against sequence %d: archive %s: %w", id, seq, a.name, a.err)
		}
		ar, release, err := j.archives.get(a.path)
		if err != nil {
			return nil, fmt.Errorf("check event_id %s against sequence %d: %w", id, seq, err)
		}
		defer release()
		err = ar.Scan(seq, nil, func(r segment.ArchiveRecord) bool {
			if r.Seq == seq && r.Time/int64(time.Millisecond) == ms {
				payload, committed, surface = bytes.Clone(r.Payload), r.Time, r.Label
			}
			return false
		})
		if err != nil {
			return nil, fmt.Errorf("check event_id %s against sequence %d: archive %s: %w", id, seq, a.name, err)
		}
		if payload == nil {
			return nil, nil // coalesced away, or another millisecond
		}
	}
	if isTombstone(payload) {
		return nil, nil // a repaired loss holds no id
	}
	st, err := parseStoredIdentity(payload)
	if err != nil {
		return nil, fmt.Errorf("check event_id %s against sequence %d: %w", id, seq, err)
	}
	if st.id != id {
		return nil, nil
	}
	e := dedupeEntry{seq: seq, hash: st.hash, occurred: st.occurred, committed: committed}
	if !e.sameContent(hash, occurred, supplied) {
		return nil, conflictError(id, seq)
	}
	return &Receipt{Sequence: seq, EventID: id, OccurredAt: time.Unix(0, st.occurred).UTC(), CommittedAt: time.Unix(0, committed).UTC(),
		Surface: surface, Durable: seq <= j.durableSeq.Load(), Duplicate: true}, nil
}

// fileMtime is a file's modification time in unix nanos, 0 when unknown.
func fileMtime(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.ModTime().UnixNano()
}

// commitTimeOf is the commit time of a hot record: the envelope's, or
// for an envelope without one (version 1, written by an earlier release)
// its occurred_at, capped at the time its segment file was last written
// (a record cannot have been committed after its file was), so a
// future-dated record of an earlier release does not pin retention.
func commitTimeOf(env segment.Envelope, occurred time.Time, segMtime int64) int64 {
	if env.Committed > 0 {
		return env.Committed
	}
	t := occurred.UnixNano()
	if segMtime > 0 && t > segMtime {
		t = segMtime
	}
	return t
}
