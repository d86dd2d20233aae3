// Package types holds the sentinel errors and the field-error type that
// several layers share (engine, engine/registry, server, cmd), so that a
// layer can match an error with errors.Is/errors.As without importing the
// layer that produced it. It imports nothing of this module.
package types
