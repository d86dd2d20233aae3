package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/agentruntime/statejournal/engine"
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

// Options turns the request into engine options over base retention.
func (cr CompactRequest) Options(base engine.Retention) (engine.CompactOptions, error) {
	o := engine.CompactOptions{DryRun: cr.DryRun, SealActive: true}
	if cr.Coalesce != "" && cr.Coalesce != "0" {
		d, err := engine.ParseAge(cr.Coalesce)
		if err != nil {
			return o, errorf(CodeInvalidQuery, "coalesce: %v", err)
		}
		o.Coalesce = d
	}
	r := base
	if cr.MaxBytes != nil {
		r.MaxBytes = 0
		if *cr.MaxBytes != "0" {
			n, err := engine.ParseSize(*cr.MaxBytes)
			if err != nil {
				return o, errorf(CodeInvalidQuery, "max_bytes: %v", err)
			}
			r.MaxBytes = n
		}
	}
	if cr.MaxAge != nil {
		r.MaxAge = 0
		if *cr.MaxAge != "0" {
			d, err := engine.ParseAge(*cr.MaxAge)
			if err != nil {
				return o, errorf(CodeInvalidQuery, "max_age: %v", err)
			}
			r.MaxAge = d
		}
	}
	if cr.MaxRecords != nil {
		r.MaxRecords = *cr.MaxRecords
	}
	o.Retention = &r
	return o, nil
}

// postCompact seals the active hot segment and compacts everything
// written before the call into archives, then applies retention. The
// body (optional) is a CompactRequest.
func (s *Server) postCompact(w http.ResponseWriter, r *http.Request) {
	var cr CompactRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		s.writeError(w, r, errorf(CodeInvalidQuery, "read body: %v", err))
		return
	}
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cr); err != nil {
			s.writeError(w, r, errorf(CodeInvalidQuery, "body is not a compact request (dry_run, coalesce, max_bytes, max_age, max_records): %v", err))
			return
		}
	}
	o, err := cr.Options(s.j.Status().Retention)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	start := time.Now()
	rep, err := s.j.Compact(r.Context(), o)
	if err != nil {
		if errors.Is(err, engine.ErrClosed) || errors.Is(err, engine.ErrFailed) || errors.Is(err, engine.ErrReadOnly) {
			s.writeError(w, r, err)
			return
		}
		s.writeError(w, r, errorf(CodeInternal, "compact: %v", err))
		return
	}
	s.log.Info("compacted on request", "archives", len(rep.Archives), "removed", len(rep.Removed), "duration", time.Since(start))
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
