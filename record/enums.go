package record

// The contract's enums and their numeric codes. The index keeps a record's
// change type and severity in one byte each, and the index checkpoint
// (state/index.ckpt) writes those bytes to disk, so a code is a format:
// each is declared here next to its name, never derived from a position
// in a list, and a code once written keeps its meaning. A new value gets
// a new code; a code is never reused. TestEnumCodesAreFixed pins them.

// Change type codes.
const (
	CodeCreated      uint8 = 0
	CodeUpdated      uint8 = 1
	CodeDeleted      uint8 = 2
	CodeHeartbeat    uint8 = 3
	CodeTransitioned uint8 = 4
	CodeExpired      uint8 = 5
	CodeInvalidated  uint8 = 6
	// CodeNoChangeType is the code of an entry without a change type: a
	// tombstone of a lost record, or a stored value no release knew.
	CodeNoChangeType uint8 = 255
)

// Severity codes. They are also the severities' ranks: a min_severity
// filter keeps the records whose code is at least its own, so the codes
// rise from the lowest severity to the highest.
const (
	CodeDebug    uint8 = 0
	CodeInfo     uint8 = 1
	CodeNotice   uint8 = 2
	CodeWarning  uint8 = 3
	CodeError    uint8 = 4
	CodeCritical uint8 = 5
)

// SeverityInfo is the severity a change gets when it names none.
const SeverityInfo = "info"

// SeverityCritical is the highest severity: under sync=interval a record
// with it is synced before it is acknowledged.
const SeverityCritical = "critical"

type enumValue struct {
	name string
	code uint8
}

// changeTypes is every change type of the contract, in the order the
// contract lists them (the order error messages show).
var changeTypes = [...]enumValue{
	{"created", CodeCreated}, {"updated", CodeUpdated}, {"deleted", CodeDeleted},
	{"heartbeat", CodeHeartbeat}, {"transitioned", CodeTransitioned},
	{"expired", CodeExpired}, {"invalidated", CodeInvalidated},
}

// severities is every severity, from the lowest to the highest.
var severities = [...]enumValue{
	{"debug", CodeDebug}, {SeverityInfo, CodeInfo}, {"notice", CodeNotice},
	{"warning", CodeWarning}, {"error", CodeError}, {SeverityCritical, CodeCritical},
}

// ChangeTypes returns every change type of the contract, in the
// contract's order; a surface may narrow the list. The slice is the
// caller's.
func ChangeTypes() []string { return names(changeTypes[:]) }

// Severities returns every severity from the lowest to the highest. The
// slice is the caller's.
func Severities() []string { return names(severities[:]) }

// ChangeTypeCode returns the code of change type t, and false (with
// CodeNoChangeType) when t is not a change type.
func ChangeTypeCode(t string) (uint8, bool) {
	for _, v := range changeTypes {
		if v.name == t {
			return v.code, true
		}
	}
	return CodeNoChangeType, false
}

// ChangeTypeOf returns the code of change type t, or a *types.FieldError
// (types.ErrInvalid) naming field, the value and every change type: the
// one check of a change type, for a record's change_type and a query's
// filter alike.
func ChangeTypeOf(field, t string) (uint8, error) {
	if code, ok := ChangeTypeCode(t); ok {
		return code, nil
	}
	return CodeNoChangeType, fieldErr(field, Clip(t), "is not a change type", ChangeTypes()...)
}

// SeverityOf returns the code of severity s, or a *types.FieldError
// (types.ErrInvalid) naming field, the value and every severity: the one
// check of a severity, for a record's severity and a min_severity filter
// alike.
func SeverityOf(field, s string) (uint8, error) {
	if code, ok := SeverityCode(s); ok {
		return code, nil
	}
	return 0, fieldErr(field, Clip(s), "is not a severity", Severities()...)
}

// ChangeTypeName returns the change type of code, and false when no
// change type has it.
func ChangeTypeName(code uint8) (string, bool) { return nameOf(changeTypes[:], code) }

// SeverityCode returns the code (the rank) of severity s, and false when
// s is not a severity.
func SeverityCode(s string) (uint8, bool) {
	for _, v := range severities {
		if v.name == s {
			return v.code, true
		}
	}
	return 0, false
}

// SeverityName returns the severity of code, and false when no severity
// has it.
func SeverityName(code uint8) (string, bool) { return nameOf(severities[:], code) }

func names(vs []enumValue) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.name
	}
	return out
}

func nameOf(vs []enumValue, code uint8) (string, bool) {
	for _, v := range vs {
		if v.code == code {
			return v.name, true
		}
	}
	return "", false
}
