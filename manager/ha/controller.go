// Package ha keeps VMs running through host failures. Its Controller is a
// loop with Run(ctx) and an injected clock: it watches the heartbeats
// (manager/hostsync's monitor over the Beats table), has silent hosts
// marked down (unless most hosts go silent at once: then it suspects the
// manager or its network and fails nothing over), and restarts a down
// host's VMs elsewhere, each only once its copy there is fenced (Restart).
// It reaches the rest of the manager only through callbacks.
package ha

import (
	"context"
	"sync"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/hostsync"
	"github.com/acli-dev/acli/manager/state"
)

// Clock is time as the controller sees it; tests inject their own.
type Clock interface {
	hostsync.Clock
	After(d time.Duration) <-chan time.Time
}

// RealClock is the system's clock.
type RealClock struct{}

func (RealClock) Now() time.Time                         { return time.Now() }
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (RealClock) Ticker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Controller is the HA loop.
type Controller struct {
	Clock   Clock         // default RealClock
	Timeout time.Duration // how long a host may stay silent
	// FenceRetry is the wait between fencing rounds (default FenceRetry).
	FenceRetry time.Duration
	Beats      *Beats
	// MarkDown has a silent host recorded down; the manager then calls
	// HostDown.
	MarkDown func(host string, silent time.Duration, now time.Time)
	// Suspect is told once when most hosts go silent at once.
	Suspect func(silent, live int)
	// Launch runs a down host's restart as a task: run is called in the
	// task with the Cluster and Report for it and returns the task's
	// closing line. Launch fails when the manager is closing.
	Launch func(down *acliv1.Host, run func(ctx context.Context, c Cluster, r Report) (string, error)) error

	mu      sync.Mutex
	pending map[string]*acliv1.Host // down hosts waiting for their restart
	running map[string]bool         // down hosts whose restart runs
	wake    chan struct{}
	started bool // Run runs: HostDown launches at once
}

func (c *Controller) init() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wake == nil {
		c.wake = make(chan struct{}, 1)
		c.pending = map[string]*acliv1.Host{}
		c.running = map[string]bool{}
	}
}

func (c *Controller) clock() Clock {
	if c.Clock == nil {
		return RealClock{}
	}
	return c.Clock
}

// HostDown launches the restart of a down host's VMs, unless one runs.
// Once Run runs, the restart's task exists when HostDown returns, so
// whoever recorded the host down (a fault RPC, the heartbeat monitor)
// never leaves a moment where the host's VMs are recorded running there,
// run nowhere, and no task says they are being restarted. Before Run,
// the restart is queued for it.
func (c *Controller) HostDown(h *acliv1.Host) {
	c.init()
	c.mu.Lock()
	if !c.running[h.Uuid] {
		c.pending[h.Uuid] = h
	}
	started := c.started
	c.mu.Unlock()
	if started {
		c.launchPending()
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// ResumeDown queues the restart of every host recorded down with VMs
// still recorded running there: clusterd stopped before their restart
// ended.
func (c *Controller) ResumeDown(db *state.DB) {
	var down []*acliv1.Host
	db.View(func(tx *state.Tx) { down = tx.Hosts() })
	for _, h := range down {
		if _, vms := db.HostUse(h.Uuid); h.NodeState == acliv1.NodeState_kNodeDown && vms > 0 {
			c.HostDown(h)
		}
	}
}

// Running reports whether a restart of the host runs.
func (c *Controller) Running(host string) bool {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running[host]
}

// Run watches the heartbeats and launches the queued restarts until ctx
// ends.
func (c *Controller) Run(ctx context.Context) {
	c.init()
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.started = false
		c.mu.Unlock()
	}()
	c.Beats.Arm(c.clock().Now())
	mon := &hostsync.Monitor{Timeout: c.Timeout, Clock: c.clock(), Beats: c.Beats.List, MarkDown: c.MarkDown, Suspect: c.Suspect}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); mon.Run(ctx) }()
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		c.launchPending()
	}
}

func (c *Controller) launchPending() {
	c.mu.Lock()
	var hosts []*acliv1.Host
	for id, h := range c.pending {
		delete(c.pending, id)
		if !c.running[id] {
			c.running[id] = true
			hosts = append(hosts, h)
		}
	}
	c.mu.Unlock()
	for _, h := range hosts {
		err := c.Launch(h, func(ctx context.Context, cl Cluster, r Report) (string, error) {
			defer c.finished(h.Uuid)
			return Restart(ctx, cl, r, c.clock(), c.FenceRetry, h)
		})
		if err != nil {
			c.finished(h.Uuid)
		}
	}
}

func (c *Controller) finished(host string) {
	c.mu.Lock()
	delete(c.running, host)
	c.mu.Unlock()
}
