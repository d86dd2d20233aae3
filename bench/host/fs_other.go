//go:build !linux

package host

// FSName is only implemented on Linux; elsewhere the report says
// "unknown".
func FSName(string) (string, error) { return "unknown", nil }

// Settle is a no-op where syncfs is not available.
func Settle(string) error { return nil }
