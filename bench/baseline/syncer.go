package baseline

import (
	"sync"
	"sync/atomic"
	"time"
)

// intervalSyncer calls sync every period until stopped; it is the background
// fsync of the SyncInterval baselines.
type intervalSyncer struct {
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// startIntervalSyncer starts the goroutine; its owner must call Stop. Failed
// fsyncs are counted in errs; the baseline reports them at Close.
func startIntervalSyncer(period time.Duration, syncFn func() error, fsyncs *atomic.Uint64, errs *atomic.Pointer[error]) *intervalSyncer {
	s := &intervalSyncer{stop: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if err := syncFn(); err != nil {
					errs.CompareAndSwap(nil, &err)
				}
				fsyncs.Add(1)
			}
		}
	}()
	return s
}

// Stop ends the goroutine and waits for it. It may be called more than once,
// and on a nil syncer.
func (s *intervalSyncer) Stop() {
	if s == nil {
		return
	}
	s.stopOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
}
