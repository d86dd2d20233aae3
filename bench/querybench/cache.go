package querybench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// DirEnv names the environment variable that says where datasets are
// built (default os.TempDir()). Use a real disk: the open figures on tmpfs
// say nothing about a cold start.
const DirEnv = "QUERYBENCH_DIR"

// DefaultDir returns $QUERYBENCH_DIR, or os.TempDir() when it is unset.
func DefaultDir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	return os.TempDir()
}

// Cache builds each dataset size once per process, under one temporary
// directory that Remove deletes. It is safe for concurrent use; two
// callers asking for the same size wait for one build.
type Cache struct {
	root string
	base Config

	mu   sync.Mutex
	sets map[int]*cacheEntry // guarded by mu
}

type cacheEntry struct {
	once sync.Once
	ds   *Dataset
	err  error
}

// NewCache creates a temporary directory under parent (DefaultDir() when
// empty) for datasets built with base (its Records is ignored).
func NewCache(parent string, base Config) (*Cache, error) {
	if parent == "" {
		parent = DefaultDir()
	}
	root, err := os.MkdirTemp(parent, "querybench-")
	if err != nil {
		return nil, fmt.Errorf("querybench cache: %w", err)
	}
	return &Cache{root: root, base: base, sets: map[int]*cacheEntry{}}, nil
}

// Root returns the cache's temporary directory.
func (c *Cache) Root() string { return c.root }

// Get returns the dataset of records records, generating it on first use.
func (c *Cache) Get(records int) (*Dataset, error) {
	c.mu.Lock()
	e, ok := c.sets[records]
	if !ok {
		e = &cacheEntry{}
		c.sets[records] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		cfg := c.base
		cfg.Records = records
		name := "records-" + SizeName(records)
		e.ds, e.err = Generate(filepath.Join(c.root, name, "journal"), filepath.Join(c.root, name, "root"), cfg)
	})
	return e.ds, e.err
}

// Drop deletes the dataset of records records, if built, to free its disk
// space; a later Get builds it again. No journal may be open on it.
func (c *Cache) Drop(records int) error {
	c.mu.Lock()
	e, ok := c.sets[records]
	delete(c.sets, records)
	c.mu.Unlock()
	if !ok {
		return nil
	}
	e.once.Do(func() {}) // wait for a build in progress
	if e.ds == nil {
		return nil
	}
	return os.RemoveAll(filepath.Dir(e.ds.Dir))
}

// Remove deletes every dataset and the cache's directory. Journals opened
// on them must be closed first.
func (c *Cache) Remove() error {
	return os.RemoveAll(c.root)
}

// SizeName writes a record count the way benchmark names spell it:
// 10000000 is "10M", 200000 is "200k", 1500000 is "1500k".
func SizeName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// ParseSize is the inverse of SizeName; it also takes plain numbers.
func ParseSize(s string) (int, error) {
	mult := 1
	t := strings.TrimSpace(s)
	switch {
	case strings.HasSuffix(t, "M"), strings.HasSuffix(t, "m"):
		mult, t = 1_000_000, t[:len(t)-1]
	case strings.HasSuffix(t, "k"), strings.HasSuffix(t, "K"):
		mult, t = 1000, t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: size %q is not a positive count like 200k or 10M", ErrConfig, s)
	}
	return n * mult, nil
}

// ParseSizes parses a comma-separated list of sizes ("1M,2M,5M,10M").
func ParseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := ParseSize(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no sizes in %q", ErrConfig, s)
	}
	return out, nil
}
