package engine

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/agentruntime/statejournal/internal/fsx"
)

func writeRecovery(fsys fsx.FS, stateDir string, r *Recovery) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return fsx.WriteFileAtomicFS(fsys, filepath.Join(stateDir, recoveryFileName), append(b, '\n'), 0o644)
}

// readRecovery returns the last recovery recorded in stateDir, or nil.
func readRecovery(stateDir string) *Recovery {
	b, err := os.ReadFile(filepath.Join(stateDir, recoveryFileName))
	if err != nil {
		return nil
	}
	var r Recovery
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	return &r
}
