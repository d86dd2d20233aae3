package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/internal/parse"
	rec "github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/types"
)

// ReceiptsBody is the answer to POST /v1/changes.
type ReceiptsBody struct {
	Receipts []engine.Receipt `json:"receipts"`
}

// ChangesBody is the answer to GET /v1/changes (see List).
type ChangesBody = List

// Body shapes of POST /v1/changes.
const (
	shapeObject = iota
	shapeArray
	shapeNDJSON
)

// postChanges records one change, an array or NDJSON, all or nothing.
// A body refused before it reaches the engine (its type or encoding, its
// size, JSON that does not parse, a wrong type, an unknown field) is
// counted in state_journal_rejected_total under its code, like the
// changes the engine refuses.
func (s *Server) postChanges(w http.ResponseWriter, r *http.Request) {
	refuse := func(err error) {
		s.j.CountRejected(err)
		s.writeError(w, r, err)
	}
	ndjsonType, err := checkContentType(r)
	if err == nil {
		err = checkContentEncoding(r)
	}
	if err != nil {
		refuse(err)
		return
	}
	buf, err := s.readBody(w, r)
	if err != nil {
		refuse(err)
		return
	}
	// The parsed changes hold copies of what they need (encoding/json
	// copies every string), so the body's buffer goes back at once.
	changes, shape, err := s.parseChanges(buf.Bytes(), ndjsonType)
	putBodyBuffer(buf)
	if err != nil {
		refuse(err)
		return
	}
	if err := s.limiter.admit(changes, time.Now()); err != nil {
		var rle *RateLimitedError
		if errors.As(err, &rle) {
			w.Header().Set("Retry-After", strconv.Itoa(rle.retryAfterSeconds()))
			s.metrics.rateLimited.Inc()
		}
		refuse(err)
		return
	}
	var receipts []engine.Receipt
	if shape == shapeObject {
		var rc engine.Receipt
		rc, err = s.j.Record(r.Context(), changes[0])
		receipts = []engine.Receipt{rc}
	} else {
		receipts, err = s.j.RecordBatch(r.Context(), changes)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeReceipts(w, receipts)
}

// writeReceipts answers 201 with the ReceiptsBody of receipts, the bytes
// writeJSON would write, encoded without reflection into a pooled
// buffer: every write request ends here.
func writeReceipts(w http.ResponseWriter, receipts []engine.Receipt) {
	p := answerBuffers.Get().(*[]byte)
	b := append((*p)[:0], `{"receipts":[`...)
	for i := range receipts {
		if i > 0 {
			b = append(b, ',')
		}
		b = receipts[i].AppendJSON(b)
	}
	b = append(b, "]}\n"...)
	h := w.Header()
	// Shared, never-mutated value slices (keys already canonical): the
	// headers writeJSON sets, without a slice allocated for each.
	h["Content-Type"] = headerJSON
	h["X-Content-Type-Options"] = headerNosniff
	h["Cache-Control"] = headerNoStore
	w.WriteHeader(http.StatusCreated)
	w.Write(b)
	if cap(b) <= maxPooledBody {
		*p = b
		answerBuffers.Put(p)
	}
}

var answerBuffers = sync.Pool{New: func() any { return new([]byte) }}

// Header values of every write answer. Their capacity equals their
// length, so an Add by anyone appends to a copy, never to these.
var (
	headerJSON    = []string{"application/json"}
	headerNosniff = []string{"nosniff"}
	headerNoStore = []string{"no-store"}
)

// bodyBuffers recycles the buffers write requests are read into and
// answered from; a buffer grown past maxPooledBody is left to the GC so
// one huge batch does not pin its memory.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBody = 1 << 20

func getBodyBuffer() *bytes.Buffer {
	b := bodyBuffers.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBodyBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		bodyBuffers.Put(b)
	}
}

// checkContentType requires a JSON or NDJSON content type and reports
// whether it names NDJSON. Requiring it keeps browsers out: a cross-site
// page can only send text/plain, form or multipart bodies without a CORS
// preflight, and this server grants none.
func checkContentType(r *http.Request) (ndjson bool, err error) {
	ct := r.Header.Get("Content-Type")
	mt, _, perr := mime.ParseMediaType(ct)
	if ct == "" || perr != nil {
		mt = ct
	}
	switch strings.ToLower(mt) {
	case "application/json":
		return false, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
		return true, nil
	}
	shown := ct
	if shown == "" {
		shown = "(none)"
	}
	return false, errorf(CodeUnsupportedMediaType, "Content-Type %s is not accepted; send application/json (one change or an array) or application/x-ndjson (one change per line)", clip(shown))
}

// checkContentEncoding refuses a compressed body with 415: the body
// bound applies to the bytes the server parses, and inflating a
// client's gzip would let a small request become a large one.
func checkContentEncoding(r *http.Request) error {
	for _, v := range r.Header.Values("Content-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "identity") {
				return errorf(CodeUnsupportedMediaType, "Content-Encoding %s is not accepted; send the body uncompressed (Content-Encoding identity or none)", clip(enc))
			}
		}
	}
	return nil
}

// utf8BOM is the UTF-8 byte order mark. RFC 8259 lets a parser ignore one
// at the start of a JSON text; some Windows tools write it, so it is
// stripped there rather than refused as "not a JSON object".
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// readBody reads the request body up to MaxBodyBytes into a pooled
// buffer; the caller returns it with putBodyBuffer once it is parsed.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (*bytes.Buffer, error) {
	max := s.cfg.MaxBodyBytes
	if r.ContentLength > max {
		return nil, errorf(CodeTooLarge, "the body is %d bytes, at most %d are accepted; split the batch", r.ContentLength, max)
	}
	buf := getBodyBuffer()
	if r.ContentLength > 0 {
		// One allocation of the announced size (bounded above), instead
		// of growing from 512 bytes.
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max)); err != nil {
		putBodyBuffer(buf)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(CodeTooLarge, "the body is over %d bytes, the most accepted; split the batch", max)
		}
		return nil, errorf(CodeCanceled, "read the body: %w", err)
	}
	return buf, nil
}

// parseChanges splits a body into changes, parsing each with
// engine.ParseChange. Errors name the change's index in an array or
// NDJSON body.
func (s *Server) parseChanges(body []byte, ndjsonType bool) ([]engine.Change, int, error) {
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(body, utf8BOM))
	if len(trimmed) == 0 {
		return nil, 0, bodyError("is empty; send one change object, an array of them, or NDJSON")
	}
	switch {
	case trimmed[0] == '[':
		// No NDJSON line can be an array of changes, so an array is an
		// array whatever the content type says.
		cs, err := s.parseArray(trimmed)
		return cs, shapeArray, err
	case ndjsonType || looksNDJSON(trimmed):
		cs, err := s.parseNDJSON(trimmed)
		return cs, shapeNDJSON, err
	case trimmed[0] == '{':
		c, err := parseChange(trimmed)
		if err != nil {
			return nil, 0, err
		}
		return []engine.Change{c}, shapeObject, nil
	}
	return nil, 0, bodyError("must be a JSON object, a JSON array of objects, or NDJSON (one object per line)")
}

// looksNDJSON reports whether a body that starts with '{' is NDJSON: its
// first line is a whole JSON value and another line follows. A
// pretty-printed single object fails the first test.
func looksNDJSON(b []byte) bool {
	if b[0] != '{' {
		return false
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return false
	}
	first := bytes.TrimSpace(b[:nl])
	return json.Valid(first) && len(bytes.TrimSpace(b[nl+1:])) > 0
}

func (s *Server) parseNDJSON(b []byte) ([]engine.Change, error) {
	var out []engine.Change
	for len(b) > 0 {
		var ln []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			ln, b = b[:i], b[i+1:]
		} else {
			ln, b = b, nil
		}
		ln = bytes.TrimSpace(ln)
		if len(ln) == 0 {
			continue // blank lines separate nothing
		}
		if len(out) >= s.cfg.MaxBatch {
			return nil, s.batchTooLarge()
		}
		c, err := parseChange(ln)
		if err != nil {
			return nil, atIndex(err, len(out))
		}
		out = append(out, c)
	}
	return out, nil
}

func (s *Server) parseArray(b []byte) ([]engine.Change, error) {
	if elems, ok := splitArray(b); ok && len(elems) > 0 && len(elems) <= s.cfg.MaxBatch {
		// The usual body: a well-formed array of objects. Each element is
		// exactly the bytes the decoder below would hand ParseChange, so
		// when every one parses the answer is the same; on any error the
		// decoder path runs and words it.
		out := make([]engine.Change, 0, len(elems))
		for _, e := range elems {
			c, err := parseChange(e)
			if err != nil {
				break
			}
			out = append(out, c)
		}
		if len(out) == len(elems) {
			return out, nil
		}
	}
	return s.parseArrayDecoder(b)
}

// parseArrayDecoder is parseArray through encoding/json's Decoder: every
// body the direct split does not take, and every error's wording.
func (s *Server) parseArrayDecoder(b []byte) ([]engine.Change, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // the '['
		return nil, jsonBodyError(err)
	}
	var out []engine.Change
	for dec.More() {
		if len(out) >= s.cfg.MaxBatch {
			return nil, s.batchTooLarge()
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, atIndex(jsonBodyError(err), len(out))
		}
		c, err := parseChange(raw)
		if err != nil {
			return nil, atIndex(err, len(out))
		}
		out = append(out, c)
	}
	if _, err := dec.Token(); err != nil { // the ']'
		return nil, jsonBodyError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bodyError("holds more after the closing ] of the array; send one array")
	}
	if len(out) == 0 {
		return nil, bodyError("is an empty array; send at least one change")
	}
	return out, nil
}

// splitArray splits a JSON array of objects into the objects' bytes
// without decoding them: it tracks strings (and their escapes) only to
// find each object's closing brace. ok is false unless b is '[', objects
// separated by commas, ']' and white space only.
func splitArray(b []byte) (elems [][]byte, ok bool) {
	i := 0
	ws := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	ws()
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	i++
	for {
		ws()
		if i >= len(b) || b[i] != '{' {
			return nil, false
		}
		start, depth, inString := i, 0, false
		for ; i < len(b); i++ {
			c := b[i]
			if inString {
				switch c {
				case '\\':
					i++ // the escaped byte cannot end the string
				case '"':
					inString = false
				}
				continue
			}
			switch c {
			case '"':
				inString = true
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if i >= len(b) {
			return nil, false
		}
		i++
		elems = append(elems, b[start:i])
		ws()
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		if i < len(b) && b[i] == ']' {
			i++
			ws()
			return elems, i == len(b)
		}
		return nil, false
	}
}

// parseChange is engine.ParseChange naming the body when the whole value
// is wrong (e.g. a number where a change object belongs).
func parseChange(b []byte) (engine.Change, error) {
	c, err := engine.ParseChange(b)
	var fe *types.FieldError
	if errors.As(err, &fe) && fe.Field == "" {
		fe.Field = "body"
	}
	return c, err
}

func (s *Server) batchTooLarge() error {
	return errorf(CodeTooLarge, "the body holds more than %d changes, the most one request accepts; split the batch", s.cfg.MaxBatch)
}

func bodyError(problem string) error {
	return &types.FieldError{Kind: types.ErrInvalid, Field: "body", Problem: problem, Index: -1}
}

func jsonBodyError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return bodyError(fmt.Sprintf("is not valid JSON at byte %d: %v", se.Offset, se))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return bodyError("ends in the middle of a JSON value")
	}
	return bodyError("is not valid JSON: " + err.Error())
}

// atIndex sets the batch index on a field error.
func atIndex(err error, i int) error {
	var fe *types.FieldError
	if errors.As(err, &fe) {
		fe.Index = i
	}
	return err
}

// query parameters GET /v1/changes accepts.
var queryParams = []string{"after", "since", "until", "surface", "change_type", "aggregate_type", "aggregate_id", "correlation_id", "min_severity", "limit", "order", "follow"}

// getChanges queries the journal.
func (s *Server) getChanges(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.Query(), time.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	cursor := r.URL.Query().Get("after") != ""
	follow, _, err := boolParam(r.URL.Query(), "follow")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if follow {
		if !cursor {
			q.After = s.j.Head()
		}
		if _, err := s.j.Query(r.Context(), engine.Query{After: q.After, HasAfter: true, Limit: 1}); errors.Is(err, engine.ErrCompacted) {
			s.writeCompacted(w, q.After, s.j.Status().Horizon)
			return
		}
		s.follow(w, r, q)
		return
	}
	lq := ListQuery{Query: q, Cursor: cursor, OldestFirst: !q.NewestFirst}
	res, err := s.j.Query(r.Context(), lq.Engine())
	if err != nil {
		if errors.Is(err, engine.ErrCompacted) {
			s.writeCompacted(w, q.After, res.Horizon)
			return
		}
		s.writeError(w, r, asQueryError(err))
		return
	}
	writeJSON(w, http.StatusOK, NewList(lq, res))
}

// writeCompacted answers a cursor below the horizon with 410 and where to
// resume after refetching snapshots.
func (s *Server) writeCompacted(w http.ResponseWriter, after, horizon uint64) {
	if horizon == 0 {
		horizon = s.j.Status().FirstSequence
	}
	e := (&CompactedError{After: after, Horizon: horizon}).APIError()
	e.RequestID = w.Header().Get(requestIDHeader)
	writeErrorBody(w, http.StatusGone, e)
}

// parseQuery turns GET /v1/changes parameters into an engine.Query.
func parseQuery(v url.Values, now time.Time) (engine.Query, error) {
	var q engine.Query
	// Unknown parameters were refused by checkParams before the handler.
	one := func(name string) (string, error) { return oneParam(v, name) }
	afterGiven := false
	if a, err := one("after"); err != nil {
		return q, err
	} else if a != "" {
		n, err := sequenceParam("after", a)
		if err != nil {
			return q, err
		}
		q.After, q.HasAfter, afterGiven = n, true, true
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		t, err := one(p.name)
		if err != nil {
			return q, err
		}
		if t == "" {
			continue
		}
		// An unescaped "+01:00" offset arrives as " 01:00"; no valid
		// value holds a space, so put the plus back.
		t = strings.ReplaceAll(t, " ", "+")
		if *p.dst, err = parse.Time(t, now); err != nil {
			return q, queryError(p.name, t, parseProblem(err))
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return q, queryError("until", v.Get("until"), fmt.Sprintf("is not after since %q (%s is not before %s): the range would match nothing; swap them",
			v.Get("since"), q.Since.Format(time.RFC3339Nano), q.Until.Format(time.RFC3339Nano)))
	}
	q.Surfaces = splitList(v["surface"])
	q.ChangeTypes = splitList(v["change_type"])
	var err error
	if q.AggregateType, err = one("aggregate_type"); err != nil {
		return q, err
	}
	if q.AggregateID, err = one("aggregate_id"); err != nil {
		return q, err
	}
	if (q.AggregateType == "") != (q.AggregateID == "") {
		return q, queryError("aggregate_type", "", "and aggregate_id must be given together")
	}
	if q.CorrelationID, err = one("correlation_id"); err != nil {
		return q, err
	}
	if q.MinSeverity, err = one("min_severity"); err != nil {
		return q, err
	}
	if q.MinSeverity != "" {
		if _, err := rec.SeverityOf("min_severity", q.MinSeverity); err != nil {
			return q, asQueryError(err)
		}
	}
	if l, err := one("limit"); err != nil {
		return q, err
	} else if l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxQueryLimit {
			return q, queryError("limit", l, fmt.Sprintf("is not a number from 1 to %d", MaxQueryLimit))
		}
		q.Limit = n
	}
	q.NewestFirst = !afterGiven
	if o, err := one("order"); err != nil {
		return q, err
	} else {
		switch o {
		case "":
		case "newest":
			q.NewestFirst = true
		case "oldest":
			q.NewestFirst = false
		default:
			return q, queryError("order", o, "is not an order", "newest", "oldest")
		}
	}
	return q, nil
}

// splitList flattens repeated and comma-separated values.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}
