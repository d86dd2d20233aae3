package types

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestEveryCodeIsOneRowWithASentinelThatMapsBackToIt(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Codes {
		if seen[c.Code] {
			t.Fatalf("code %q has two rows", c.Code)
		}
		seen[c.Code] = true
		if c.HTTP < 400 || c.HTTP > 599 {
			t.Errorf("%s: HTTP status %d is not an error status", c.Code, c.HTTP)
		}
		if c.Exit != ExitFailure && c.Exit != ExitUsage {
			t.Errorf("%s: exit code %d is neither 1 nor 2", c.Code, c.Exit)
		}
		if c.Code == CodeInternal {
			continue
		}
		if c.Err == nil {
			t.Fatalf("%s has no sentinel", c.Code)
		}
		if got := Code(fmt.Errorf("context: %w", c.Err)); got != c.Code {
			t.Errorf("Code of a wrapped %v = %q, want %q", c.Err, got, c.Code)
		}
		if Sentinel(c.Code) != c.Err || HTTPStatus(c.Code) != c.HTTP || ExitCode(c.Code) != c.Exit {
			t.Errorf("%s: lookups disagree with its row", c.Code)
		}
	}
	if !seen[CodeEventIDConflict] || HTTPStatus(CodeEventIDConflict) != 409 {
		t.Errorf("event_id_conflict must be in the table with HTTP 409")
	}
	if Code(errors.New("boom")) != CodeInternal || HTTPStatus("no-such-code") != 500 || ExitCode("no-such-code") != ExitFailure {
		t.Errorf("an unknown error or code must be internal, 500, exit 1")
	}
	if Code(context.DeadlineExceeded) != CodeCanceled {
		t.Errorf("a deadline is canceled")
	}
	fe := &FieldError{Kind: ErrUnknownSurface, Field: "surface", Index: -1}
	if Code(fmt.Errorf("%w", errors.Join(fe, ErrUsage))) != CodeUnknownSurface {
		t.Errorf("a field error keeps its code over usage")
	}
}
