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
	// host's heartbeat. After a probe it is called from the watchdog's goroutine, at once and
	// concurrently with OnEvent, so a slow event handler (lookups on a busy connection) never
	// delays a heartbeat; it must not block.
	OnAlive func()
	// OnProbe is called after each answered probe too, but in turn with OnEvent and OnState:
	// for periodic work on the connection (a full reconcile), which may be slow.
	OnProbe func()
	// MinBackoff and MaxBackoff bound the wait between reconnect attempts (defaults 100ms, 5s).
	MinBackoff, MaxBackoff time.Duration
	// ProbeInterval is how often the daemon is checked with a cheap RPC, and ProbeTimeout
	// how long that RPC may take before the connection is declared hung and cut (a frozen
	// host never closes its socket). Defaults 2s and 3s. Probes go over a connection of
	// their own: libvirtd reads at most max_client_requests (5) calls of a connection at a
	// time, so a probe queued behind slow calls (domains starting on a loaded host) would
	// take a busy daemon for a hung one.
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

// Run connects and keeps reconnecting until ctx ends; then it closes the connection. It
// returns promptly once ctx ends, even while a callback waits on an RPC: ending ctx closes
// the connection, and a closed connection fails its pending RPCs.
func (h *Host) Run(ctx context.Context) {
	backoff := h.cfg.MinBackoff
	reportedDown := false
	for ctx.Err() == nil {
		c, err := DialURI(ctx, h.uri, h.cfg.Dial)
		if err == nil {
			var served bool
			served, err = h.session(ctx, c)
			if served {
				backoff = h.cfg.MinBackoff
				reportedDown = false
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

// session serves one connection until it is lost or ctx ends, and closes it. served says
// whether it got as far as being up; err is why it ended.
func (h *Host) session(ctx context.Context, c *Conn) (served bool, err error) {
	events, err := c.Events(ctx)
	if err != nil {
		c.Close()
		return false, err
	}
	probe, err := DialURI(ctx, h.uri, h.cfg.Dial)
	if err == nil {
		// Answered once before the host counts as up. This call also orders go-libvirt's
		// connection set-up before its disconnect watcher, which otherwise race when the
		// daemon goes before the first tick.
		if err = h.probe(ctx, probe); err != nil {
			probe.Close()
		}
	}
	if err != nil {
		c.Close()
		return false, fmt.Errorf("probe connection: %w", err)
	}
	// The watchdog probes the daemon and cuts the connection when a probe goes unanswered,
	// and closes it when ctx ends: go-libvirt's RPCs have no timeout, so a callback blocked
	// on a frozen or departing host is released only by the connection ending under it.
	stop := make(chan struct{})
	alive := make(chan struct{}, 1)
	lost := make(chan error, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		h.watch(ctx, c, probe, stop, alive, lost)
	}()
	defer func() {
		h.setDown(fmt.Errorf("%w: %s: %v", ErrHostDown, h.uri, err))
		close(stop)
		<-watched
		c.Close()
		probe.Close()
	}()
	h.setUp(c)
	h.alive()
	return true, h.serve(ctx, c, events, alive, lost)
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

// serve forwards events and answered probes to the callbacks until the connection is lost or
// ctx ends; it returns why.
func (h *Host) serve(ctx context.Context, c *Conn, events <-chan Event, alive <-chan struct{}, lost <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-lost:
			return err
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
		case <-alive:
			if h.cfg.OnProbe != nil {
				h.cfg.OnProbe()
			}
		}
	}
}

// watch probes the daemon over probe every ProbeInterval until stop closes. An answered
// probe is the host's heartbeat (OnAlive, from here: timed by receipt, never behind an
// event) and is signalled on alive for OnProbe (coalesced while serve is busy); an
// unanswered one cuts c and is reported on lost. When ctx ends it closes c.
func (h *Host) watch(ctx context.Context, c, probe *Conn, stop <-chan struct{}, alive chan<- struct{}, lost chan<- error) {
	tick := time.NewTicker(h.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			c.Close()
			return
		case <-tick.C:
		}
		if err := h.probe(ctx, probe); err != nil {
			if ctx.Err() != nil {
				c.Close()
				return
			}
			c.d.cut()
			probe.d.cut()
			lost <- err
			return
		}
		h.alive()
		select {
		case alive <- struct{}{}:
		default:
		}
	}
}

// probeStalls bounds the extra windows a probe is given when this process stalled during
// its window: a hung host is still found, at worst that many windows late.
const probeStalls = 2

// probe makes one cheap RPC, bounded by ProbeTimeout. Its goroutine ends when the RPC does,
// at the latest when the connection is cut or closed. A window during which this process
// itself did not run (descheduled on a loaded machine, stopped), seen as a gap of more
// than half a window between ticks of a clock of its own, proves nothing of the host:
// the answer may be waiting unread. The probe is then given another window, as the
// heartbeat monitor skips a round that ran late.
func (h *Host) probe(ctx context.Context, c *Conn) error {
	done := make(chan error, 1)
	go func() {
		_, err := c.l.ConnectGetLibVersion()
		done <- err
	}()
	window := h.cfg.ProbeTimeout
	t := time.NewTimer(window)
	defer t.Stop()
	tick := time.NewTicker(max(window/8, time.Millisecond))
	defer tick.Stop()
	last, stalled, stalls := time.Now(), false, 0
	for {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			now := time.Now() // when this goroutine ran, not when the tick was due
			stalled = stalled || now.Sub(last) > window/2
			last = now
			continue
		case <-t.C:
		}
		select {
		case err := <-done: // answered while the timer fired
			return err
		default:
		}
		if stalled = stalled || time.Since(last) > window/2; !stalled || stalls == probeStalls {
			return fmt.Errorf("no answer to a probe within %v", window)
		}
		stalls++
		stalled, last = false, time.Now()
		t.Reset(window)
	}
}
