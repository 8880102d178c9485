package completion

import (
	"context"
	"sync"
	"time"

	"github.com/acli-dev/acli/commands"
)

// DefaultTTL is how long fetched names are served before a refresh.
const DefaultTTL = 5 * time.Second

// FetchFunc lists live entities of a kind.
type FetchFunc func(ctx context.Context, k commands.Kind) ([]commands.Entity, error)

// Cache serves entity names instantly and refreshes them in the background
// when older than the TTL, one fetch per kind at a time. Fetch errors are
// silent: completion keeps what it had (or nothing) while clusterd is down.
type Cache struct {
	TTL     time.Duration
	Timeout time.Duration // per fetch
	fetch   FetchFunc
	now     func() time.Time

	mu      sync.Mutex
	entries map[commands.Kind]*entry
	wg      sync.WaitGroup
}

type entry struct {
	ents    []commands.Entity
	at      time.Time // last attempt (success or not)
	loading bool
}

// NewCache returns a cache over fetch.
func NewCache(fetch FetchFunc, ttl time.Duration) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Cache{TTL: ttl, Timeout: 2 * time.Second, fetch: fetch, now: time.Now, entries: map[commands.Kind]*entry{}}
}

// Names returns what is cached for k now, starting a refresh when stale.
func (c *Cache) Names(k commands.Kind) []commands.Entity {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		e = &entry{}
		c.entries[k] = e
	}
	if !e.loading && (e.at.IsZero() || c.now().Sub(e.at) >= c.TTL) {
		e.loading = true
		c.wg.Add(1)
		go c.refresh(k, e)
	}
	return e.ents
}

// Warm starts fetching kinds before anyone asks.
func (c *Cache) Warm(kinds ...commands.Kind) {
	for _, k := range kinds {
		c.Names(k)
	}
}

// Wait blocks until in-flight refreshes end (tests, shutdown).
func (c *Cache) Wait() { c.wg.Wait() }

func (c *Cache) refresh(k commands.Kind, e *entry) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	ents, err := c.fetch(ctx, k)
	if err == nil {
		commands.SortEntities(ents)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.loading = false
	e.at = c.now()
	if err == nil {
		e.ents = ents
	}
}
