package engine

import (
	"container/list"
	"sync"

	"github.com/agentruntime/statejournal/segment/archive"
)

// archiveCache keeps a bounded number of archives open (footer and block
// index parsed, file descriptor held) so repeated queries do not reopen
// them, without holding one descriptor per archive: a journal kept for
// months can hold thousands of archives. An archive in use is never
// closed under its reader; eviction closes it when the last reader
// releases it.
type archiveCache struct {
	mu    sync.Mutex
	max   int
	lru   *list.List // of *cachedArchive, most recent first
	items map[string]*list.Element
}

type cachedArchive struct {
	path    string
	ar      *archive.Reader
	refs    int
	evicted bool
}

// defaultOpenArchives bounds the descriptors the cache holds.
const defaultOpenArchives = 128

func newArchiveCache(max int) *archiveCache {
	return &archiveCache{max: max, lru: list.New(), items: map[string]*list.Element{}}
}

// get returns the open archive at path and a release function the caller
// must call when done.
func (c *archiveCache) get(path string) (*archive.Reader, func(), error) {
	c.mu.Lock()
	if el, ok := c.items[path]; ok {
		ca := el.Value.(*cachedArchive)
		ca.refs++
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		return ca.ar, c.releaser(ca), nil
	}
	c.mu.Unlock()
	ar, err := archive.Open(path)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[path]; ok { // opened meanwhile by another reader
		ar.Close()
		ca := el.Value.(*cachedArchive)
		ca.refs++
		c.lru.MoveToFront(el)
		return ca.ar, c.releaser(ca), nil
	}
	ca := &cachedArchive{path: path, ar: ar, refs: 1}
	c.items[path] = c.lru.PushFront(ca)
	for c.lru.Len() > c.max {
		c.evictLocked(c.lru.Back())
	}
	return ar, c.releaser(ca), nil
}

func (c *archiveCache) releaser(ca *cachedArchive) func() {
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		ca.refs--
		if ca.evicted && ca.refs == 0 {
			ca.ar.Close()
		}
	}
}

// evictLocked drops an entry; its archive closes now or at its last
// release.
func (c *archiveCache) evictLocked(el *list.Element) {
	ca := el.Value.(*cachedArchive)
	c.lru.Remove(el)
	delete(c.items, ca.path)
	ca.evicted = true
	if ca.refs == 0 {
		ca.ar.Close()
	}
}

// forget drops path (the archive was removed by retention).
func (c *archiveCache) forget(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[path]; ok {
		c.evictLocked(el)
	}
}

// close drops everything.
func (c *archiveCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.lru.Len() > 0 {
		c.evictLocked(c.lru.Back())
	}
}
