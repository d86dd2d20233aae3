package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/agentruntime/statejournal/engine"
	rec "github.com/agentruntime/statejournal/record"
	"github.com/agentruntime/statejournal/types"
)

// Client talks to a journal server, over its Unix socket when one is
// given, else over TCP. It is safe for concurrent use.
type Client struct {
	http   *http.Client
	base   string // http://host
	target string // what the client dials, for error messages
	token  string
}

// maxAnswerBytes bounds what the client reads of one answer.
const maxAnswerBytes = 64 << 20

// Dial returns a client for the server at socketPath (preferred when not
// empty) or addr (host:port); when both are given and the socket cannot
// be reached, the client falls back to addr. token, when set, is sent as
// a bearer token. Dial does not connect; the first call does.
func Dial(socketPath, addr, token string) *Client {
	tr := &http.Transport{
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		Proxy:                 nil, // a proxy never reaches a loopback journal
	}
	c := &Client{token: token}
	if socketPath != "" {
		d := &net.Dialer{Timeout: 5 * time.Second}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, "unix", socketPath)
			if err != nil && addr != "" && ctx.Err() == nil {
				// A socket this user may not open (mode 0600, another
				// owner) or one that is gone: the TCP address may still
				// serve, with the token.
				if tc, terr := d.DialContext(ctx, "tcp", addr); terr == nil {
					return tc, nil
				}
			}
			return conn, err
		}
		c.base = "http://localhost"
		c.target = "unix:" + socketPath
		if addr != "" {
			c.target += " or " + addr
		}
	} else {
		tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second}).DialContext
		c.base = "http://" + addr
		c.target = addr
	}
	c.http = &http.Client{Transport: tr}
	return c
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Error is an error answer that is not about a field of a change. Code is
// the server's stable code; Is matches the engine sentinel of the code
// (engine.ErrCompacted, engine.ErrFailed, ...) and ErrUnauthorized and
// ErrTooLarge.
type Error struct {
	StatusCode int
	APIError
}

// Error renders the answer in one line.
func (e *Error) Error() string {
	return fmt.Sprintf("journal server: %s (%d %s): %s", e.Code, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Unwrap returns the sentinel matching the code, or nil.
func (e *Error) Unwrap() error { return sentinelOf(e.Code) }

// sentinelOf is the sentinel a code stands for (types.Sentinel).
func sentinelOf(code string) error { return types.Sentinel(code) }

// Record posts changes as one JSON array and returns their receipts in
// order. The batch is all or nothing: on a bad change the error is a
// *types.FieldError (matching types.ErrInvalid, ErrUnknownSurface or
// ErrPolicy, with the change's Index) and nothing was written. Other
// error answers are *Error; a server that cannot be reached is a wrapped
// network error.
func (c *Client) Record(ctx context.Context, changes []engine.Change) ([]engine.Receipt, error) {
	return c.record(ctx, changes, false)
}

// RecordNDJSON is Record with the changes sent as NDJSON (one change per
// line, application/x-ndjson) instead of a JSON array: the form a writer
// streaming many changes sends. The answer and errors are Record's.
func (c *Client) RecordNDJSON(ctx context.Context, changes []engine.Change) ([]engine.Receipt, error) {
	return c.record(ctx, changes, true)
}

func (c *Client) record(ctx context.Context, changes []engine.Change, ndjson bool) ([]engine.Receipt, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	contentType := "application/json"
	if ndjson {
		contentType = "application/x-ndjson"
	} else {
		buf.WriteByte('[')
	}
	for i := range changes {
		if i > 0 && !ndjson {
			buf.WriteByte(',')
		}
		// encoding/json would rewrite invalid UTF-8: refuse it here,
		// naming the field, as the server would.
		if err := changes[i].CheckUTF8(); err != nil {
			if fe, ok := err.(*types.FieldError); ok {
				fe.Index = i
			}
			return nil, err
		}
		// The input form: empty fields are left out so that the journal
		// fills them, and the sequence is never sent.
		b, err := changes[i].Append(buf.AvailableBuffer(), rec.FormInput)
		if err != nil {
			return nil, fmt.Errorf("encode change %d: %w", i, err)
		}
		buf.Write(b)
		if ndjson {
			buf.WriteByte('\n')
		}
	}
	if !ndjson {
		buf.WriteByte(']')
	}
	var out ReceiptsBody
	if err := c.do(ctx, http.MethodPost, "/v1/changes", contentType, buf.Bytes(), &out); err != nil {
		return nil, err
	}
	if len(out.Receipts) != len(changes) {
		return out.Receipts, fmt.Errorf("journal server answered %d receipts for %d changes", len(out.Receipts), len(changes))
	}
	return out.Receipts, nil
}

// Status returns the server's journal status.
func (c *Client) Status(ctx context.Context) (engine.Status, error) {
	var st engine.Status
	err := c.do(ctx, http.MethodGet, "/v1/status", "", nil, &st)
	return st, err
}

// Healthz returns nil when the server answers healthy; an *Error
// matching engine.ErrFailed when the journal's write path failed, or
// code "draining" while the server shuts down.
func (c *Client) Healthz(ctx context.Context) error {
	var h HealthBody
	err := c.do(ctx, http.MethodGet, "/healthz", "", nil, &h)
	var e *Error
	if errors.As(err, &e) && e.StatusCode == http.StatusServiceUnavailable && e.Code == "" {
		// /healthz answers 503 with a HealthBody, not an ErrorBody.
		e.Code, e.Message = types.CodeDraining, "the server is shutting down"
		if h.Status == "failed" {
			e.Code, e.Message = types.CodeJournalFailed, h.Error
		}
	}
	return err
}

// do sends one request and decodes a 2xx answer into out, or turns an
// error answer into an error.
func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("journal server request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("reach journal server at %s: %w", c.target, err)
		}
		return fmt.Errorf("%w at %s: %w", types.ErrUnavailable, c.target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("%w: read the answer of %s: %w", types.ErrUnavailable, c.target, err)
	}
	if resp.StatusCode/100 == 2 {
		if rb, ok := out.(*ReceiptsBody); ok {
			// Straight to its decoder: json.Unmarshal would scan the
			// answer twice (validate, then skip) before calling it.
			if err := rb.UnmarshalJSON(data); err != nil {
				return fmt.Errorf("decode journal server answer to %s %s: %w", method, path, err)
			}
			return nil
		}
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("decode journal server answer to %s %s: %w", method, path, err)
			}
		}
		return nil
	}
	if out != nil {
		// Some endpoints (healthz) answer an error status with their own
		// body; let the caller see it.
		_ = json.Unmarshal(data, out)
	}
	return decodeError(resp.StatusCode, data)
}

// decodeError rebuilds the error of an error answer: a *types.FieldError
// with its Kind sentinel when the answer names a field, else an *Error.
func decodeError(status int, data []byte) error {
	var eb ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil || eb.Error.Code == "" {
		msg := types.Clip(strings.TrimSpace(string(data)), 200)
		return &Error{StatusCode: status, APIError: APIError{Message: msg}}
	}
	e := eb.Error
	if e.Field != "" && types.NamesField(e.Code) {
		fe := &types.FieldError{
			Kind: sentinelOf(e.Code), Field: e.Field, Value: e.Value, Problem: e.Problem,
			Allowed: e.Allowed, Suggestion: e.Suggestion, Index: -1,
		}
		if e.Index != nil {
			fe.Index = *e.Index
		}
		return fe
	}
	return &Error{StatusCode: status, APIError: e}
}
