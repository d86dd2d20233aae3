package fsx

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SealJSON returns v's JSON, newline-terminated, with its checksum field
// set: the CRC32C (Castagnoli), as 8 lowercase hex digits, of v's JSON
// encoded with that field empty. crc points at v's checksum field (a
// string tagged `json:"crc32c"`). It is the one sealed form of the
// journal's small state files (state/identity.json, state/horizon.json,
// state/coverage.json, state/relay.json; docs/format/).
func SealJSON(v any, crc *string) []byte {
	*crc = ""
	b, _ := json.Marshal(v)
	*crc = fmt.Sprintf("%08x", crc32.Checksum(b, castagnoli))
	out, _ := json.Marshal(v)
	return append(out, '\n')
}

// CheckSealedJSON verifies a value decoded from SealJSON's output: the
// checksum field crc points at must be the CRC32C of v's JSON with that
// field empty. The field keeps its value either way.
func CheckSealedJSON(v any, crc *string) error {
	got := *crc
	defer func() { *crc = got }()
	if len(got) != 8 {
		return fmt.Errorf("crc32c %q is not 8 hex digits", got)
	}
	*crc = ""
	b, _ := json.Marshal(v)
	if want := fmt.Sprintf("%08x", crc32.Checksum(b, castagnoli)); want != got {
		return fmt.Errorf("checksum mismatch (stored %s, computed %s)", got, want)
	}
	return nil
}
