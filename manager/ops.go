package manager

// Day-2 operations share this state and these helpers: host and CVM
// maintenance (maint.go), live migration (migrate.go), HA (ha.go) and VM
// groups and affinity (affinity.go). Every decision about where a VM goes
// is made by manager/scheduler on a snapshot of the model; this file builds
// the snapshot and holds what the decisions reserve while they are carried
// out (target memory, migration slots, evacuation targets).

import (
	"context"
	"errors"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/ha"
	"github.com/acli-dev/acli/manager/migrate"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// Defaults of the operations settings.
const (
	DefaultMaxMigrationsPerHost = 2
	DefaultHeartbeatMisses      = 5
	// minHeartbeatTimeout keeps a loaded machine (or a fast simulation)
	// from declaring hosts down because the manager itself was slow.
	minHeartbeatTimeout = 2 * time.Second
)

// opsState is fixed at New: the moves under way (manager/migrate: slots,
// targets and arrivals, under its own lock).
type opsState struct {
	moves *migrate.Moves
}

func (m *Manager) initOps(cfg Config) {
	maxMigrations := cfg.MaxMigrationsPerHost
	if maxMigrations <= 0 {
		maxMigrations = DefaultMaxMigrationsPerHost
	}
	m.ops.moves = migrate.NewMoves(m.db, maxMigrations)
	misses := cfg.HeartbeatMisses
	if misses <= 0 {
		misses = DefaultHeartbeatMisses
	}
	interval := time.Second
	if d, ok := m.drv.(interface{ HeartbeatInterval() time.Duration }); ok {
		interval = d.HeartbeatInterval()
	}
	m.ha = m.newHA(ha.HeartbeatTimeout(cfg.HeartbeatTimeout, misses, interval, minHeartbeatTimeout))
	m.hostEv = m.newHostEvents()
}

// placeWithRulesLocked places a VM that belongs to an anti-affinity group
// with the scheduler, which honours the group; other VMs (and a VM the
// scheduler cannot place) go to the placement function, whose must-rules
// are the same and whose refusals name each host's shortfall.
func (m *Manager) placeWithRulesLocked(v *acliv1.Vm) (*hostRec, bool) {
	var snap *scheduler.Snapshot
	var in []string
	m.db.View(func(tx *state.Tx) {
		groups := ha.AntiAffinity(tx)
		if in = groups[v.Uuid]; len(in) > 0 {
			snap = tx.Schedule(groups)
		}
	})
	if snap == nil {
		return nil, false
	}
	p, err := scheduler.Place(snap, state.SchedVM(v, in), scheduler.Options{})
	if err != nil {
		return nil, false
	}
	return m.hostAt(p.Host.UUID), true
}

// startOps starts the HA controller and resumes the HA of hosts that
// were down with VMs still recorded on them when clusterd stopped.
func (m *Manager) startOps() {
	m.ha.ResumeDown(m.db)
	m.bgWG.Add(1)
	go func() {
		defer m.bgWG.Done()
		m.ha.Run(m.ctx)
	}()
}

// ---- reservations ----

// hold is memory reserved on a host for a VM on its way there (a
// state.DB arrival, which every commit counts). It ends when the VM is
// recorded on the host, or when the move is given up.
type hold struct {
	db *state.DB
	id uint64
}

// holdLocked holds on h the memory v reserves there (state.DB.Hold).
func (m *Manager) holdLocked(v *acliv1.Vm, h *hostRec) *hold {
	return &hold{db: m.db, id: m.db.Hold(v, h.pb.Uuid)}
}

func (hd *hold) releaseLocked() {
	if hd != nil {
		hd.db.Depart(hd.id)
	}
}

// holds are a task's reservations; whatever is left is released when the
// task ends.
type holds struct {
	byVM map[string]*hold
}

func (hs *holds) addLocked(vm string, hd *hold) {
	if hs.byVM == nil {
		hs.byVM = map[string]*hold{}
	}
	hs.byVM[vm].releaseLocked() // a re-plan replaces the VM's earlier hold
	hs.byVM[vm] = hd
}

func (hs *holds) releaseLocked(vm string) {
	hs.byVM[vm].releaseLocked()
}

func (hs *holds) releaseAllLocked() {
	for _, hd := range hs.byVM {
		hd.releaseLocked()
	}
}

// ---- VM locks inside long tasks ----

// lockVm waits until no other task changes or reads the VM, then takes it
// for t in a commit (takeLocked), which reads its record. Long tasks
// (evacuation, return, HA) take each VM only while they act on it, so
// operators can still work with the others meanwhile. It returns the
// current record, nil when the VM is gone. Manager.mu is held across the
// commit: a host report applied under it (hostsync.Reconciler) never
// changes the record between the take and the read.
func (m *Manager) lockVm(ctx context.Context, t *taskRec, id string) (*vmRec, error) {
	for {
		var r *vmRec
		m.mu.Lock()
		holder, err := m.takeLocked(ctx, t, func(tx *state.Tx) error {
			if r = vmRecOf(tx, tx.Vm(id)); r == nil {
				return errVmGone
			}
			return nil
		}, id)
		if err != nil || holder == "" {
			m.mu.Unlock()
			if errors.Is(err, errVmGone) {
				return nil, nil
			}
			return r, err
		}
		// Woken when the holder changes; one not in the table (ended
		// meanwhile) is asked again shortly.
		var ch <-chan struct{}
		var again <-chan time.Time
		if other := m.tasks.Get(holder); other != nil {
			ch = other.Changed()
		} else {
			again = time.After(10 * time.Millisecond)
		}
		m.mu.Unlock()
		select {
		case <-ch:
		case <-again:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

var errVmGone = errors.New("the vm is gone")

func (m *Manager) unlockVm(t *taskRec, id string) {
	m.mu.Lock()
	m.releaseLocked(t, id)
	m.mu.Unlock()
}

// putVm commits a VM record that the caller has locked, and applies it
// together with fn (under Manager.mu), e.g. releasing a reservation.
func (m *Manager) putVm(ctx context.Context, next *acliv1.Vm, rev int64, fn func()) error {
	if _, err := m.commit(context.WithoutCancel(ctx), []write{{key: state.VmKey(next.Uuid), msg: next, rev: rev}}); err != nil {
		return err
	}
	if fn != nil {
		m.mu.Lock()
		fn()
		m.mu.Unlock()
	}
	return nil
}
