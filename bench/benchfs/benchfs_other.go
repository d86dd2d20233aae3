//go:build !linux

package benchfs

// Name is only implemented on Linux; elsewhere the report says
// "unknown".
func Name(string) (string, error) { return "unknown", nil }

// Settle is a no-op where syncfs is not available.
func Settle(string) error { return nil }
