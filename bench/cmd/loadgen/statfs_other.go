//go:build !linux

package main

// statfsName is only implemented on Linux; elsewhere the report says
// "unknown".
func statfsName(string) (string, error) { return "unknown", nil }

// settleFS is a no-op where syncfs is not available.
func settleFS(string) error { return nil }
