package fsx

import (
	"encoding/json"
	"strings"
	"testing"
)

type sealedDoc struct {
	Version int    `json:"version"`
	Horizon uint64 `json:"horizon"`
	CRC     string `json:"crc32c"`
}

func TestASealedJSONFileIsBelievedOnlyAsWritten(t *testing.T) {
	d := sealedDoc{Version: 2, Horizon: 41}
	b := SealJSON(&d, &d.CRC)
	if !strings.HasSuffix(string(b), "}\n") || len(d.CRC) != 8 {
		t.Fatalf("sealed %q, crc %q", b, d.CRC)
	}
	for _, tc := range []struct {
		name  string
		bytes string
		ok    bool
	}{
		{"the file as written is believed", string(b), true},
		{"a changed figure fails its checksum", strings.Replace(string(b), `"horizon":41`, `"horizon":42`, 1), false},
		{"a checksum cut short is refused", strings.Replace(string(b), `"crc32c":"`+d.CRC+`"`, `"crc32c":"`+d.CRC[:7]+`"`, 1), false},
		{"an empty checksum is refused", strings.Replace(string(b), `"crc32c":"`+d.CRC+`"`, `"crc32c":""`, 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got sealedDoc
			if err := json.Unmarshal([]byte(tc.bytes), &got); err != nil {
				t.Fatal(err)
			}
			stored := got.CRC
			err := CheckSealedJSON(&got, &got.CRC)
			if (err == nil) != tc.ok {
				t.Errorf("CheckSealedJSON: %v, want ok %t", err, tc.ok)
			}
			if got.CRC != stored {
				t.Errorf("the checksum field changed from %q to %q", stored, got.CRC)
			}
		})
	}
}
