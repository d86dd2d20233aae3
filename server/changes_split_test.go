package server

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseArrayAnswersAsTheDecoderDoes(t *testing.T) {
	s := &Server{cfg: Config{MaxBatch: 3}}
	const hb = `{"source":"runtime.work_session","surface":"runtime_work_session","change_type":"heartbeat","aggregate_type":"work_session","aggregate_id":"ws-1"}`
	odd := `{"source":"a{[\"}]","surface":"s\\\\","change_type":"heartbeat","aggregate_type":"t","aggregate_id":"}","metadata":{"x":[1,{"y":"]"}]}}`
	tests := []struct {
		name  string
		body  string
		split bool // splitArray takes it
	}{
		{"one change", `[` + hb + `]`, true},
		{"three with white space", " [ " + hb + " ,\n" + hb + "\t, " + hb + " ]\r\n", true},
		{"braces, brackets and escaped quotes inside strings", `[` + odd + `]`, true},
		{"more than MaxBatch", `[` + strings.Repeat(hb+",", 3) + hb + `]`, true},
		{"empty", `[]`, false},
		{"a trailing comma", `[` + hb + `,]`, false},
		{"a number element", `[` + hb + `,1]`, false},
		{"something after the array", `[` + hb + `] x`, false},
		{"a second array", `[` + hb + `][]`, false},
		{"unclosed", `[` + hb, false},
		{"an object that does not close", `[{"source":"a"`, false},
		{"a bad change", `[{"colour":"red"}]`, true},
		{"a bad change after a good one", `[` + hb + `,{"surface":5}]`, true},
		{"invalid JSON inside an element", `[{"source":}]`, true},
		{"a stray closing brace inside", `[` + hb[:len(hb)-1] + `}}]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := splitArray([]byte(tt.body)); ok != tt.split {
				t.Fatalf("splitArray took %q: %v, want %v", tt.body, ok, tt.split)
			}
			got, err := s.parseArray([]byte(tt.body))
			want, wantErr := s.parseArrayDecoder([]byte(tt.body))
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Fatalf("error %v, the decoder's %v", err, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("changes %#v, the decoder's %#v", got, want)
			}
		})
	}
}
