package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/internal/parse"
)

// CompactRequest is the optional body of POST /v1/compact. Omitted
// retention fields keep the server's retention.
type CompactRequest struct {
	DryRun     bool    `json:"dry_run"`
	Coalesce   string  `json:"coalesce,omitempty"`  // e.g. "1m"; "" or "0" for none
	MaxBytes   *string `json:"max_bytes,omitempty"` // e.g. "64MiB"; "0" for no limit
	MaxAge     *string `json:"max_age,omitempty"`   // e.g. "7d"; "0" for no limit
	MaxRecords *uint64 `json:"max_records,omitempty"`
}

// compactParams are the query parameters of POST /v1/compact: the
// fields of CompactRequest, for callers that send no body.
var compactParams = []string{"dry_run", "coalesce", "max_bytes", "max_age", "max_records"}

// Options turns the request into engine options over base retention.
// Durations and sizes are read by internal/parse, as the CLI reads them;
// "0" means no limit (or, for coalesce, no coalescing).
func (cr CompactRequest) Options(base engine.Retention) (engine.CompactOptions, error) {
	o := engine.CompactOptions{DryRun: cr.DryRun, SealActive: true}
	if cr.Coalesce != "" {
		d, err := parse.Duration(cr.Coalesce)
		if err != nil {
			return o, queryError("coalesce", cr.Coalesce, parseProblem(err))
		}
		o.Coalesce = d
	}
	r := base
	if cr.MaxBytes != nil {
		n, err := parse.Size(*cr.MaxBytes)
		if err != nil {
			return o, queryError("max_bytes", *cr.MaxBytes, parseProblem(err))
		}
		r.MaxBytes = n
	}
	if cr.MaxAge != nil {
		d, err := parse.Duration(*cr.MaxAge)
		if err != nil {
			return o, queryError("max_age", *cr.MaxAge, parseProblem(err))
		}
		r.MaxAge = d
	}
	if cr.MaxRecords != nil {
		r.MaxRecords = *cr.MaxRecords
	}
	o.Retention = &r
	return o, nil
}

// compactRequestOf reads a CompactRequest from the body (optional, JSON,
// unknown fields refused) and the query parameters (the same names). A
// field given in both is refused rather than one silently winning.
func compactRequestOf(r *http.Request, body []byte) (CompactRequest, error) {
	var cr CompactRequest
	body = bytes.TrimPrefix(body, utf8BOM)
	inBody := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cr); err != nil {
			return cr, errorf(CodeInvalidQuery, "body is not a compact request (an object of dry_run, coalesce, max_bytes, max_age, max_records): %w", err)
		}
		_ = json.Unmarshal(body, &inBody)
	}
	v := r.URL.Query()
	for _, k := range compactParams {
		if _, q := v[k]; q {
			if _, b := inBody[k]; b {
				return cr, queryError(k, "", "is given both in the query and in the body; give it once")
			}
		}
	}
	if b, ok, err := boolParam(v, "dry_run"); err != nil {
		return cr, err
	} else if ok {
		cr.DryRun = b
	}
	str := func(name string, dst **string) error {
		if _, ok := v[name]; !ok {
			return nil
		}
		s, err := oneParam(v, name)
		if err != nil {
			return err
		}
		*dst = &s
		return nil
	}
	var coalesce *string
	if err := str("coalesce", &coalesce); err != nil {
		return cr, err
	}
	if coalesce != nil {
		cr.Coalesce = *coalesce
	}
	if err := str("max_bytes", &cr.MaxBytes); err != nil {
		return cr, err
	}
	if err := str("max_age", &cr.MaxAge); err != nil {
		return cr, err
	}
	if _, ok := v["max_records"]; ok {
		s, err := oneParam(v, "max_records")
		if err != nil {
			return cr, err
		}
		n, perr := strconv.ParseUint(s, 10, 64)
		if perr != nil {
			return cr, queryError("max_records", s, "is not a number of records (a non-negative integer; 0 for no limit)")
		}
		cr.MaxRecords = &n
	}
	return cr, nil
}

// postCompact seals the active hot segment and compacts everything
// written before the call into archives, then applies retention. The
// request (optional) is a CompactRequest as a JSON body or as query
// parameters; dry_run=1 (or true) reports and changes nothing.
func (s *Server) postCompact(w http.ResponseWriter, r *http.Request) {
	if err := checkContentEncoding(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		s.writeError(w, r, errorf(CodeInvalidQuery, "read body: %w", err))
		return
	}
	cr, err := compactRequestOf(r, body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	o, err := cr.Options(s.j.Status().Retention)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	start := time.Now()
	rep, err := s.j.Compact(r.Context(), o)
	if err != nil {
		var re *engine.RetentionError
		if errors.As(err, &re) {
			// A setting below the hot log's headroom: a bad request that
			// names the minimum, never a compaction that deletes it all.
			s.writeError(w, r, &apiErr{e: APIError{Code: CodeInvalidQuery, Message: err.Error(), Field: re.Field,
				Value: strconv.FormatInt(re.Value, 10), Problem: "is below the minimum of " + strconv.FormatInt(re.Minimum, 10) + " bytes"}})
			return
		}
		if errors.Is(err, engine.ErrClosed) || errors.Is(err, engine.ErrFailed) || errors.Is(err, engine.ErrReadOnly) {
			s.writeError(w, r, err)
			return
		}
		s.writeError(w, r, errorf(CodeInternal, "compact: %w", err))
		return
	}
	s.log.Info("compacted on request", "dry_run", o.DryRun, "archives", len(rep.Archives), "removed", len(rep.Removed), "duration", time.Since(start))
	writeJSON(w, http.StatusOK, rep)
}

// Compact asks the server to compact (see POST /v1/compact).
func (c *Client) Compact(ctx context.Context, req CompactRequest) (engine.CompactReport, error) {
	var rep engine.CompactReport
	body, err := json.Marshal(req)
	if err != nil {
		return rep, err
	}
	err = c.do(ctx, http.MethodPost, "/v1/compact", "application/json", body, &rep)
	return rep, err
}
