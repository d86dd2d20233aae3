// Package types holds the sentinel errors and the field-error type that
// several layers share (engine, engine/registry, server, cmd), so that a
// layer can match an error with errors.Is/errors.As without importing the
// layer that produced it.
//
// It also holds the one table of error codes, Codes: each stable code
// (as it appears in HTTP error bodies and in journalctl --json errors),
// the sentinel it stands for, its HTTP status and journalctl's exit code.
// Code, HTTPStatus, ExitCode and Sentinel read it; the server, its client
// and the CLI derive their answers from it and keep no table of their
// own. A new code is a new row.
//
// It imports nothing of this module.
package types
