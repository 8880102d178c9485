package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// Moves is what the VM moves under way reserve besides memory (state.DB
// holds that): a migration slot on each host a live migration runs
// between, the hosts running tasks move VMs onto (targets), and the VMs
// arriving on each host now (migrations, cold moves, power-ons and HA
// restarts). Maintenance, HA, vm.migrate and power-ons all count here,
// under this one lock, so an evacuation sees every VM on its way.
//
// A step starts toward a host by counting its arrival, then checking the
// host in the committed state (Arrive); an evacuation records its host
// EnteringMaintenanceMode, then waits for the arrivals (AwaitArrivals).
// One of the two sees the other: a step either fails its check or is
// waited for.
type Moves struct {
	db    *state.DB
	limit int

	mu       sync.Mutex
	slots    map[string]int // host -> live migrations it takes part in
	arriving map[string]int // host -> steps under way toward it
	targets  map[string][]*tasks.Task
	changed  chan struct{} // closed and replaced when a slot or an arrival ends
}

// NewMoves paces live migrations at limit per host (at least 1).
func NewMoves(db *state.DB, limit int) *Moves {
	return &Moves{
		db: db, limit: max(limit, 1),
		slots: map[string]int{}, arriving: map[string]int{}, targets: map[string][]*tasks.Task{},
		changed: make(chan struct{}),
	}
}

// Limit is the most live migrations one host takes part in at once.
func (m *Moves) Limit() int { return m.limit }

// TargetGoneError says a step's target can no longer take the VM: it was
// cordoned, went down, is entering maintenance or left since the plan.
type TargetGoneError struct {
	Host, Why string
}

func (e *TargetGoneError) Error() string {
	return fmt.Sprintf("target %s can no longer take it: %s", e.Host, e.Why)
}

// TargetGone reports whether err is (or wraps) a TargetGoneError.
func TargetGone(err error) bool {
	var gone *TargetGoneError
	return errors.As(err, &gone)
}

// Check says why host takes no VM now in the committed state (nil if it
// does).
func (m *Moves) Check(host string) (err error) {
	m.db.View(func(tx *state.Tx) {
		h := tx.Host(host)
		switch {
		case h == nil:
			err = &TargetGoneError{Host: host, Why: "it left the cluster"}
		case state.Unavailable(h) != "":
			err = &TargetGoneError{Host: label(h), Why: state.Unavailable(h)}
		}
	})
	return err
}

// Arrive counts a VM on its way to host until end, then checks host:
// when it takes no VM now, the arrival ends at once and the error says
// why. end may be called more than once.
func (m *Moves) Arrive(host string) (end func(), err error) {
	end = m.Arriving(host)
	if err := m.Check(host); err != nil {
		end()
		return nil, err
	}
	return end, nil
}

// Arriving counts a VM on its way to host until end, unchecked: for a
// caller that checks the target itself after this (a power-on checks it
// when its task starts).
func (m *Moves) Arriving(host string) (end func()) {
	m.mu.Lock()
	m.arriving[host]++
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.arriving[host]--; m.arriving[host] <= 0 {
				delete(m.arriving, host)
			}
			m.wakeLocked()
		})
	}
}

// AwaitArrivals waits until no VM is on its way to host.
func (m *Moves) AwaitArrivals(ctx context.Context, host string) error {
	return m.await(ctx, func() bool { return m.arriving[host] == 0 })
}

// StartLive begins a live migration from src to dst: it waits for a slot on
// each (the move is accepted, only paced), then arrives on dst (Arrive).
// end frees both; on error nothing is held.
func (m *Moves) StartLive(ctx context.Context, src, dst string) (end func(), err error) {
	err = m.await(ctx, func() bool {
		if m.slots[src] >= m.limit || m.slots[dst] >= m.limit {
			return false
		}
		m.slots[src]++
		m.slots[dst]++
		return true
	})
	if err != nil {
		return nil, err
	}
	free := func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, h := range []string{src, dst} {
			if m.slots[h]--; m.slots[h] <= 0 {
				delete(m.slots, h)
			}
		}
		m.wakeLocked()
	}
	arrived, err := m.Arrive(dst)
	if err != nil {
		free()
		return nil, err
	}
	return func() { arrived(); free() }, nil
}

// await waits until ready, run under m.mu, reports true.
func (m *Moves) await(ctx context.Context, ready func() bool) error {
	for {
		m.mu.Lock()
		if ready() {
			m.mu.Unlock()
			return nil
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (m *Moves) wakeLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// AddTarget marks host as a destination of t until DropTargets(t).
func (m *Moves) AddTarget(host string, t *tasks.Task) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.targets[host] = append(m.targets[host], t)
}

// DropTargets ends every mark AddTarget made for t.
func (m *Moves) DropTargets(t *tasks.Task) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, ts := range m.targets {
		if ts = slices.DeleteFunc(ts, func(x *tasks.Task) bool { return x == t }); len(ts) == 0 {
			delete(m.targets, h)
		} else {
			m.targets[h] = ts
		}
	}
}

// Targets are the running tasks moving VMs onto host.
func (m *Moves) Targets(host string) []*tasks.Task {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.targets[host])
}
