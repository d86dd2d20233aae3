package server

import (
	"net/http"

	"github.com/agentruntime/statejournal/coverage"
	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/engine/registry"
)

// SurfacesBody is the answer to GET /v1/surfaces.
type SurfacesBody struct {
	RegistryDigest string        `json:"registry_digest"`
	Surfaces       []SurfaceView `json:"surfaces"`
}

// SurfaceView is one registry surface with its live figures. A surface
// that has records in the journal but is no longer in the registry
// appears with Registered false and only its id declared.
type SurfaceView struct {
	*registry.Surface
	Registered bool                 `json:"registered"`
	Live       engine.SurfaceStatus `json:"live"`
	// Coverage is the surface's coverage proof (docs/coverage.md); absent
	// when the server runs without a coverage watcher.
	Coverage *coverage.SurfaceReport `json:"coverage,omitempty"`
}

// StatusBody is the answer to GET /v1/status: the journal's status and,
// when the server runs a coverage watcher, the coverage proof.
type StatusBody struct {
	engine.Status
	Coverage *coverage.Report `json:"coverage,omitempty"`
	// CoverageProblem says why persisted coverage figures could not be
	// read (state-journal-status, which reads the file).
	CoverageProblem string `json:"coverage_problem,omitempty"`
	// Relay is the NATS relay's state (relay.Status) when the server runs
	// one (serve --relay-nats) or, for state-journal-status, when the
	// data directory has a relay cursor.
	Relay any `json:"relay,omitempty"`
	// RelayError says why the relay's cursor file was not believed
	// (state-journal-status, which reads it).
	RelayError string `json:"relay_error,omitempty"`
}

// CoverageReporter is what the server shows of a coverage watcher
// (*coverage.Watcher).
type CoverageReporter interface{ Report() coverage.Report }

// HealthBody is the answer to GET /healthz.
type HealthBody struct {
	Status       string `json:"status"` // ok, failed or draining
	LastSequence uint64 `json:"last_sequence"`
	Error        string `json:"error,omitempty"`
}

func (s *Server) getSurfaces(w http.ResponseWriter, r *http.Request) {
	reg := s.j.Registry()
	st := s.j.Status()
	live := make(map[string]engine.SurfaceStatus, len(st.Surfaces))
	for _, ss := range st.Surfaces {
		live[ss.ID] = ss
	}
	body := SurfacesBody{RegistryDigest: reg.Digest()}
	var cov *coverage.Report
	if s.cfg.Coverage != nil {
		r := s.cfg.Coverage.Report()
		cov = &r
	}
	seen := make(map[string]bool)
	for _, sf := range reg.Surfaces() {
		l, ok := live[sf.ID]
		if !ok {
			l = engine.SurfaceStatus{ID: sf.ID}
		}
		v := SurfaceView{Surface: sf, Registered: true, Live: l}
		if cov != nil {
			v.Coverage = cov.Surface(sf.ID)
		}
		body.Surfaces = append(body.Surfaces, v)
		seen[sf.ID] = true
	}
	for _, ss := range st.Surfaces {
		if !seen[ss.ID] {
			body.Surfaces = append(body.Surfaces, SurfaceView{Surface: &registry.Surface{ID: ss.ID}, Live: ss})
		}
	}
	if body.Surfaces == nil {
		body.Surfaces = []SurfaceView{}
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	body := StatusBody{Status: s.j.Status()}
	if s.cfg.Coverage != nil {
		r := s.cfg.Coverage.Report()
		body.Coverage = &r
	}
	if s.cfg.RelayStatus != nil {
		body.Relay = s.cfg.RelayStatus()
	}
	writeJSON(w, http.StatusOK, body)
}

// postValidate checks the data directory beside the live writer: it takes
// no lock and changes no file. The answer is 200 whether or not the
// journal is clean; the report's "clean" says which.
func (s *Server) postValidate(w http.ResponseWriter, r *http.Request) {
	rep, err := engine.ValidateDir(r.Context(), s.j.Dir(), engine.ValidateOptions{Registry: s.j.Registry()})
	if err != nil {
		s.writeError(w, r, errorf(CodeInternal, "validate %s: %w", s.j.Dir(), err))
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// getHealthz answers 200 while the journal accepts writes, 503 once its
// write path failed (it must be reopened) or while the server drains.
func (s *Server) getHealthz(w http.ResponseWriter, r *http.Request) {
	st := s.j.Status()
	body := HealthBody{Status: "ok", LastSequence: st.LastSequence}
	code := http.StatusOK
	switch {
	case st.Failed != "":
		body.Status, body.Error, code = "failed", st.Failed, http.StatusServiceUnavailable
	case s.draining.Load():
		body.Status, code = "draining", http.StatusServiceUnavailable
	}
	writeJSON(w, code, body)
}

// ReadyBody is the answer to GET /readyz.
type ReadyBody struct {
	Status       string `json:"status"` // ready, failed or draining
	LastSequence uint64 `json:"last_sequence"`
	Horizon      uint64 `json:"horizon"`
	Error        string `json:"error,omitempty"`
}

// getReadyz answers 200 when the server can take traffic: the journal's
// recovery and index load are done (a Server exists only once
// engine.Open finished them; before, Starting answers 503 "starting" on
// the same address), its write path has not failed, and the server is
// not draining. Otherwise 503: a load balancer sends its traffic
// elsewhere. /readyz also carries the horizon so that a probe can tell a
// restored journal from an empty one.
func (s *Server) getReadyz(w http.ResponseWriter, r *http.Request) {
	st := s.j.Status()
	body := ReadyBody{Status: "ready", LastSequence: st.LastSequence, Horizon: st.Horizon}
	code := http.StatusOK
	switch {
	case st.Failed != "":
		body.Status, body.Error, code = "failed", st.Failed, http.StatusServiceUnavailable
	case s.draining.Load():
		body.Status, code = "draining", http.StatusServiceUnavailable
	}
	writeJSON(w, code, body)
}
