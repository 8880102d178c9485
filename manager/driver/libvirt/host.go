package libvirt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrHostDown: the host's libvirt connection is down and being re-established.
var ErrHostDown = errors.New("libvirt host is down")

// HostConfig describes one supervised libvirt host.
type HostConfig struct {
	URI  string
	Dial DialOptions
	// OnState is called with up=true each time a connection is established (the caller
	// reconciles its domains then: List is authoritative) and with up=false, and the reason,
	// when it is lost or cannot be made. Calls are serialized.
	OnState func(up bool, err error)
	// OnEvent receives lifecycle events of the host's domains while connected.
	OnEvent func(Event)
	// OnAlive is called after the connection is made and after each probe it answers: the
	// host's heartbeat.
	OnAlive func()
	// MinBackoff and MaxBackoff bound the wait between reconnect attempts (defaults 100ms, 5s).
	MinBackoff, MaxBackoff time.Duration
	// ProbeInterval is how often a live connection is checked with a cheap RPC, and
	// ProbeTimeout how long that RPC may take before the connection is declared hung and cut
	// (a frozen host never closes its socket). Defaults 2s and 3s.
	ProbeInterval, ProbeTimeout time.Duration
}

// Host keeps a connection to one libvirtd alive, reconnecting with exponential backoff.
type Host struct {
	cfg HostConfig
	uri *URI

	mu   sync.RWMutex
	conn *Conn
	err  error // why it is down

	firstUp   chan struct{} // closed by the first connection
	firstOnce sync.Once
}

// NewHost validates the configuration; Run does the connecting.
func NewHost(cfg HostConfig) (*Host, error) {
	u, err := ParseURI(cfg.URI)
	if err != nil {
		return nil, err
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 2 * time.Second
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 3 * time.Second
	}
	return &Host{cfg: cfg, uri: u, err: fmt.Errorf("%w: %s not connected yet", ErrHostDown, u), firstUp: make(chan struct{})}, nil
}

// WaitConnected waits until Run has connected once, so a host that just
// joined takes operations at once; on ctx's end it says why it is not up.
func (h *Host) WaitConnected(ctx context.Context) error {
	select {
	case <-h.firstUp:
		return nil
	case <-ctx.Done():
		_, err := h.Conn()
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
}

// Conn returns the live connection, or an error wrapping ErrHostDown.
func (h *Host) Conn() (*Conn, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.conn == nil {
		return nil, h.err
	}
	return h.conn, nil
}

// Up reports whether the host is connected.
func (h *Host) Up() bool {
	_, err := h.Conn()
	return err == nil
}

// Run connects and keeps reconnecting until ctx ends; then it closes the connection.
func (h *Host) Run(ctx context.Context) {
	backoff := h.cfg.MinBackoff
	reportedDown := false
	for ctx.Err() == nil {
		c, err := DialURI(ctx, h.uri, h.cfg.Dial)
		if err == nil {
			evCtx, cancel := context.WithCancel(ctx)
			var events <-chan Event
			events, err = c.Events(evCtx)
			if err != nil {
				cancel()
				c.Close()
			} else {
				backoff = h.cfg.MinBackoff
				reportedDown = false
				h.setUp(c)
				h.alive()
				err = h.serve(ctx, c, events)
				cancel()
				c.Close()
			}
		}
		if ctx.Err() != nil {
			break
		}
		down := fmt.Errorf("%w: %s: %v", ErrHostDown, h.uri, err)
		h.setDown(down)
		// One down report per outage, not one per failed attempt.
		if !reportedDown && h.cfg.OnState != nil {
			h.cfg.OnState(false, down)
		}
		reportedDown = true
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, h.cfg.MaxBackoff)
	}
	h.setDown(fmt.Errorf("%w: %s: stopped", ErrHostDown, h.uri))
}

func (h *Host) setUp(c *Conn) {
	h.mu.Lock()
	h.conn, h.err = c, nil
	h.mu.Unlock()
	if h.cfg.OnState != nil {
		h.cfg.OnState(true, nil)
	}
	h.firstOnce.Do(func() { close(h.firstUp) })
}

func (h *Host) alive() {
	if h.cfg.OnAlive != nil {
		h.cfg.OnAlive()
	}
}

func (h *Host) setDown(err error) {
	h.mu.Lock()
	h.conn, h.err = nil, err
	h.mu.Unlock()
}

// serve forwards events and probes the connection until it is lost; it returns why.
func (h *Host) serve(ctx context.Context, c *Conn, events <-chan Event) error {
	probe := time.NewTicker(h.cfg.ProbeInterval)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Disconnected():
			return errors.New("connection closed")
		case ev, ok := <-events:
			if !ok {
				events = nil // stream ended; Disconnected tells whether the link did
				continue
			}
			if h.cfg.OnEvent != nil {
				h.cfg.OnEvent(ev)
			}
		case <-probe.C:
			if err := h.probe(c); err != nil {
				c.d.cut()
				return err
			}
			h.alive()
		}
	}
}

func (h *Host) probe(c *Conn) error {
	done := make(chan error, 1)
	go func() {
		_, err := c.l.ConnectGetLibVersion()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(h.cfg.ProbeTimeout):
		return fmt.Errorf("no answer to a probe within %v", h.cfg.ProbeTimeout)
	}
}
