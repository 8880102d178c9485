package completion

import (
	"context"
	"sync"
	"time"
)

// DriverProbe learns which driver clusterd runs (cluster.get) off the
// keystroke path, so the completer can hide namespaces only another driver
// serves (sim.* on a libvirt cluster). Until the first answer, and while
// clusterd is unreachable, the driver is unknown ("").
type DriverProbe struct {
	TTL     time.Duration
	Timeout time.Duration // per fetch
	fetch   func(ctx context.Context) (string, error)
	now     func() time.Time

	mu      sync.Mutex
	driver  string
	at      time.Time // last attempt
	loading bool
	wg      sync.WaitGroup
}

// NewDriverProbe returns a probe over fetch, refreshed every ttl.
func NewDriverProbe(fetch func(ctx context.Context) (string, error), ttl time.Duration) *DriverProbe {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &DriverProbe{TTL: ttl, Timeout: 2 * time.Second, fetch: fetch, now: time.Now}
}

// Driver returns what is known now, starting a refresh when stale.
func (p *DriverProbe) Driver() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.loading && (p.at.IsZero() || p.now().Sub(p.at) >= p.TTL) {
		p.loading = true
		p.wg.Add(1)
		go p.refresh()
	}
	return p.driver
}

// Wait blocks until an in-flight refresh ends (tests, shutdown).
func (p *DriverProbe) Wait() { p.wg.Wait() }

func (p *DriverProbe) refresh() {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	defer cancel()
	d, err := p.fetch(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loading = false
	p.at = p.now()
	if err == nil {
		p.driver = d
	}
}
