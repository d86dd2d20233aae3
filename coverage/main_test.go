package coverage

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine of a watcher (the run loop, the follower, fsnotify's
// reader) ends at Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
