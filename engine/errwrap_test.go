package engine

import (
	"context"
	"encoding/json"
	"errors"
	"syscall"
	"testing"

	"github.com/agentruntime/statejournal/internal/fsx"
)

// TestAFailedFsyncKeepsItsErrnoMatchable fails the hot log's fsync with
// ENOSPC: the journal's sticky error matches ErrFailed and, through every
// wrap, syscall.ENOSPC, for the failed write and every write after it.
func TestAFailedFsyncKeepsItsErrnoMatchable(t *testing.T) {
	j := openT(t, t.TempDir(), withFS(fsx.NewFaulty(fsx.OS, fsx.Fault{Op: fsx.OpSync, Path: hotDirName + "/", Err: syscall.ENOSPC})))
	for _, attempt := range []string{"the failed write", "the next write"} {
		_, err := j.Record(context.Background(), heartbeat("ws-1"))
		var errno syscall.Errno
		if !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &errno) || errno != syscall.ENOSPC {
			t.Fatalf("%s: error %v: want one matching both ErrFailed and syscall.ENOSPC (errors.As finds errno %d)", attempt, err, errno)
		}
	}
}

// TestAnIntegrityErrorKeepsItsCause: an identity file that is not JSON
// is an integrity error whose decode error errors.As still finds.
func TestAnIntegrityErrorKeepsItsCause(t *testing.T) {
	_, err := parseIdentity([]byte("{not json"))
	var se *json.SyntaxError
	if !errors.Is(err, ErrIntegrity) || !errors.As(err, &se) {
		t.Fatalf("parseIdentity of a damaged file: %v (%T): want an ErrIntegrity error that keeps its *json.SyntaxError", err, err)
	}
}
