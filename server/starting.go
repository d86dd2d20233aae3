package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentruntime/statejournal/types"
)

// Starting answers the probes on the TCP address while the journal opens
// (recovery and the index load can take a while on a large journal):
// /healthz 200 {"status":"starting"} — the process is alive, do not
// restart it — and /readyz 503 {"status":"starting"} — send no traffic
// yet; every other path 503 with code "starting". Handoff stops it and
// passes the still-open listener to New (Config.Listener), so the address
// never stops accepting between the two.
type Starting struct {
	l    *handoffListener
	srv  *http.Server
	done chan error
	once sync.Once
}

// CodeStarting is the error code of a request that arrives while the
// journal is still opening.
const CodeStarting = types.CodeStarting

// ListenStarting binds addr and serves the starting probes on it.
func ListenStarting(addr string) (*Starting, error) {
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s: %w", addr, err)
	}
	tcp, ok := tl.(*net.TCPListener)
	if !ok {
		tl.Close()
		return nil, fmt.Errorf("server: listen on %s: not a TCP listener", addr)
	}
	st := &Starting{l: &handoffListener{TCPListener: tcp}, done: make(chan error, 1)}
	st.srv = &http.Server{
		Handler:           http.HandlerFunc(serveStarting),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
	}
	go func() { st.done <- st.srv.Serve(st.l) }()
	return st, nil
}

// Addr is the bound address (with the port resolved).
func (st *Starting) Addr() string { return st.l.Addr().String() }

// Handoff stops answering and returns the listener, still bound, for
// Config.Listener. Connections the starting server holds are closed; a
// client reconnects to the real server on the same address.
func (st *Starting) Handoff() net.Listener {
	st.stop()
	return st.l.TCPListener
}

// Close stops answering and releases the address (when the journal could
// not be opened).
func (st *Starting) Close() error {
	st.stop()
	return st.l.TCPListener.Close()
}

func (st *Starting) stop() {
	st.once.Do(func() {
		st.l.stopping.Store(true)
		st.srv.SetKeepAlivesEnabled(false)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = st.srv.Shutdown(ctx)
		cancel()
		_ = st.srv.Close()
		<-st.done
		_ = st.l.SetDeadline(time.Time{})
	})
}

func serveStarting(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	switch r.URL.Path {
	case "/healthz":
		writeJSON(w, http.StatusOK, HealthBody{Status: "starting"})
	case "/readyz":
		writeJSON(w, http.StatusServiceUnavailable, ReadyBody{Status: "starting"})
	default:
		writeErrorBody(w, statusOf(CodeStarting), APIError{Code: CodeStarting,
			Message: "the journal is still opening (recovery and the index load); retry when /readyz answers 200"})
	}
}

// errHandedOff ends the starting server's Serve loop.
var errHandedOff = errors.New("server: listener handed off")

// handoffListener lets an http.Server stop accepting without closing the
// socket: Accept wakes up every 50 ms (a deadline) to see whether it must
// stop, and Close does nothing, so Shutdown leaves the socket bound.
type handoffListener struct {
	*net.TCPListener
	stopping atomic.Bool
}

func (l *handoffListener) Accept() (net.Conn, error) {
	for {
		if l.stopping.Load() {
			return nil, errHandedOff
		}
		_ = l.SetDeadline(time.Now().Add(50 * time.Millisecond))
		c, err := l.TCPListener.Accept()
		if err == nil {
			return c, nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		return nil, err
	}
}

func (l *handoffListener) Close() error { return nil }
