package server

import (
	"errors"
	"syscall"
	"testing"

	"github.com/agentruntime/statejournal/types"
)

// TestAnAnswerKeepsTheCauseItWraps: errorf with %w answers with its own
// code and message, and errors.Is still finds the cause through it.
func TestAnAnswerKeepsTheCauseItWraps(t *testing.T) {
	err := errorf(CodeInternal, "compact: %w", &types.FieldError{Kind: types.ErrInvalid, Field: "x", Index: -1, Problem: "wrapped"})
	err = errorf(CodeInternal, "validate /d: %w", errors.Join(syscall.ENOSPC, err))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("errors.Is(%v, ENOSPC) is false", err)
	}
	if e := apiErrorOf(err); e.Code != CodeInternal || e.Field != "" || e.Message == "" {
		t.Fatalf("apiErrorOf = %+v: want the ready answer (internal, no field), not the field error its cause holds", e)
	}
	if plain := errorf(CodeTooLarge, "the body is %d bytes", 9); !errors.Is(plain, types.ErrTooLarge) || apiErrorOf(plain).Message != "the body is 9 bytes" {
		t.Fatalf("an answer without a cause: %v", plain)
	}
}
