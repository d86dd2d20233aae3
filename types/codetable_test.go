package types

import (
	"errors"
	"net/http"
	"testing"
)

func TestTheCodeTableCannotBeChangedFromOutside(t *testing.T) {
	Codes[0].HTTP, Codes[0].Err = http.StatusTeapot, nil
	t.Cleanup(func() { Codes = CodeTable() })
	rows := CodeTable()
	rows[0].Exit = 99
	if HTTPStatus(CodeUnknownSurface) != http.StatusBadRequest || ExitCode(CodeUnknownSurface) != ExitFailure {
		t.Fatal("writing to Codes or to CodeTable's slice changed the answers")
	}
	if Code(&FieldError{Kind: ErrUnknownSurface, Index: -1}) != CodeUnknownSurface || !errors.Is(Sentinel(CodeUnknownSurface), ErrUnknownSurface) {
		t.Fatal("writing to Codes changed how an error maps to its code")
	}
}

func TestNamesFieldIsTheCodesOfFieldErrors(t *testing.T) {
	want := map[string]bool{CodeInvalidChange: true, CodeUnknownSurface: true, CodePolicyViolation: true,
		CodeEventIDConflict: true, CodeInvalidQuery: true, CodeBadRegistry: true}
	for _, c := range CodeTable() {
		if NamesField(c.Code) != want[c.Code] {
			t.Errorf("NamesField(%q) = %v, want %v", c.Code, NamesField(c.Code), want[c.Code])
		}
	}
	if NamesField("no-such-code") {
		t.Error("an unknown code names no field")
	}
}
