package manager

import (
	"context"
	"sync"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
)

var timeNow = time.Now

// consumeHostEvents applies the driver's host reports until the driver
// closes the stream; heartbeats are taken by receipt, without the model
// lock (ha.Beats.Consume).
func (m *Manager) consumeHostEvents(ch <-chan driver.HostEvent) {
	defer m.bgWG.Done()
	m.beats.Consume(ch, timeNow, func(ev driver.HostEvent) {
		if err := m.applyHostEvent(context.Background(), ev); err != nil {
			m.log.Error("applying host event", "host", ev.HostUUID, "event", ev.Kind.String(), "err", err)
		}
	})
}

// applyHostEvent records a host state change reported by the driver. It is
// idempotent: the sim's fault RPCs apply their change at once and the same
// event arriving later from the stream is a no-op. Host records are written
// with a revision compare; on a conflict with a concurrent task the change
// is recomputed from the new state.
func (m *Manager) applyHostEvent(ctx context.Context, ev driver.HostEvent) error {
	if ev.Kind == driver.VmStates {
		return m.applyVmStates(ctx, ev) // reconcile.go
	}
	if ev.Kind == driver.Heartbeat {
		if !m.beats.Receive(ev.HostUUID, ev.Time, timeNow()) {
			return nil
		}
		// A heartbeat sent after the host was marked down: it is back.
		ev = driver.HostEvent{Kind: driver.HostUp, HostUUID: ev.HostUUID, Time: ev.Time, Reason: "heartbeats resumed"}
	}
	// One change at a time, and none older than the last one applied to
	// the host: the sim's fault RPCs apply their change at once, so the
	// driver's own report of it arrives later, and after a quick fail and
	// recover it would undo the recovery.
	m.hostEv.Lock()
	if last, ok := m.hostEv.at[ev.HostUUID]; ok && ev.Time.Before(last) {
		m.hostEv.Unlock()
		return nil
	}
	cur, next, err := m.commitHostEvent(ctx, ev)
	if err == nil && !ev.Time.IsZero() {
		if m.hostEv.at == nil {
			m.hostEv.at = map[string]time.Time{}
		}
		m.hostEv.at[ev.HostUUID] = ev.Time
	}
	m.hostEv.Unlock()
	if err != nil || next == nil {
		return err
	}
	if cur.CvmState != next.CvmState {
		m.cvmStateChanged(cur, next)
	}
	if ev.Kind == driver.HostDown {
		m.ha.HostDown(next)
	}
	return nil
}

// hostEventState serialises host state changes (applyHostEvent) and
// remembers when the last one of each host happened.
type hostEventState struct {
	sync.Mutex
	at map[string]time.Time // host UUID -> time of the last change applied
}

// commitHostEvent records the host change an event means and publishes it;
// next is nil when there is nothing to change.
func (m *Manager) commitHostEvent(ctx context.Context, ev driver.HostEvent) (*acliv1.Host, *acliv1.Host, error) {
	for attempt := 0; ; attempt++ {
		m.mu.RLock()
		h := m.hosts[ev.HostUUID]
		var cur *acliv1.Host
		var rev int64
		if h != nil {
			cur, rev = h.pb, h.rev
		}
		m.mu.RUnlock()
		if cur == nil {
			return nil, nil, nil
		}
		msg, severity, typ := "", "info", "host"
		var change state.HostChange
		switch ev.Kind {
		case driver.HostDown:
			change, msg, severity = state.HostDown, "host "+cur.Name+" ("+cur.HypervisorIp+") is down: "+ev.Reason, "error"
		case driver.HostUp:
			change, msg = state.HostUp, "host "+cur.Name+" ("+cur.HypervisorIp+") is up: "+ev.Reason
		case driver.CvmDown:
			change, msg, severity, typ = state.CvmDown, "cvm "+cur.CvmIp+" on host "+cur.Name+" is down: "+ev.Reason, "error", "cvm"
		case driver.CvmUp:
			change, msg, typ = state.CvmUp, "cvm "+cur.CvmIp+" on host "+cur.Name+" is up: "+ev.Reason, "cvm"
		default:
			return nil, nil, nil
		}
		next, err := state.TransitionHost(cur, change)
		if err != nil || next == cur {
			return nil, nil, err // observations are never refused; nothing to change
		}
		if ev.Kind == driver.HostDown {
			// Only heartbeats sent after this bring the host back; stored
			// before the commit marks the host down (heartbeat reads both).
			m.beats.MarkingDown(cur.Uuid, ev.Time)
		}
		newRev, err := m.commit(ctx, []write{{key: hostKey(cur.Uuid), msg: next, rev: rev}})
		if store.IsConflict(err) && attempt < 5 {
			// The other writer may not have applied its change yet.
			time.Sleep(time.Duration(attempt+1) * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		m.mu.Lock()
		if h.rev == rev {
			m.putHostLocked(next, newRev)
		}
		m.mu.Unlock()
		if ev.Kind == driver.HostUp {
			m.beats.Seen(cur.Uuid, timeNow())
		}
		m.publish(typ, severity, "", []*acliv1.EntityRef{hostRef(next)}, "%s", msg)
		m.log.Info("host state changed", "host", cur.Name, "event", ev.Kind.String(), "reason", ev.Reason)
		return cur, next, nil
	}
}

// cvmStateChanged is called after a host's CVM state changed (CVM or host
// failure and recovery, CVM maintenance), outside Manager.mu, with the host
// records before and after. Storage services that depend on which CVMs
// serve (iSCSI sessions) react here.
func (m *Manager) cvmStateChanged(prev, next *acliv1.Host) {
	m.onCvmStateChanged(prev, next) // iSCSI failover and failback (vg.go)
}
