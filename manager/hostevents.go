package manager

import (
	"context"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/hostsync"
)

var timeNow = time.Now

// newHostEvents wires manager/hostsync's host report applier to this
// manager: commits, events, iSCSI failover and HA.
func (m *Manager) newHostEvents() *hostsync.Events {
	return &hostsync.Events{
		DB: m.db, Beats: &m.beats, Now: timeNow,
		Commit: func(ctx context.Context, next *acliv1.Host, rev int64) error {
			_, err := m.commit(ctx, []write{{key: hostKey(next.Uuid), msg: next, rev: rev}})
			return err
		},
		VmStates: m.applyVmStates, // reconcile.go
		Publish: func(c hostsync.Change) {
			m.publish(c.Type, c.Severity, "", []*acliv1.EntityRef{hostRef(c.Next)}, "%s", c.Message)
			m.log.Info("host state changed", "host", c.Next.Name, "event", c.Event.Kind.String(), "reason", c.Event.Reason)
		},
		Changed: func(c hostsync.Change) {
			if c.Prev.CvmState != c.Next.CvmState {
				m.cvmStateChanged(c.Prev, c.Next)
			}
			if c.Event.Kind == driver.HostDown {
				m.ha.HostDown(c.Next)
			}
		},
	}
}

// consumeHostEvents applies the driver's host reports until the driver
// closes the stream; heartbeats are taken by receipt, without the model
// lock (ha.Beats.Consume).
func (m *Manager) consumeHostEvents(ch <-chan driver.HostEvent) {
	defer m.bgWG.Done()
	m.beats.Consume(ch, timeNow, func(ev driver.HostEvent) {
		if err := m.hostEv.Apply(context.Background(), ev); err != nil {
			m.log.Error("applying host event", "host", ev.HostUUID, "event", ev.Kind.String(), "err", err)
		}
	})
}

// cvmStateChanged is called after a host's CVM state changed (CVM or host
// failure and recovery, CVM maintenance), outside Manager.mu, with the host
// records before and after. Storage services that depend on which CVMs
// serve (iSCSI sessions) react here.
func (m *Manager) cvmStateChanged(prev, next *acliv1.Host) {
	m.vgs.CvmChanged(m.ctx, prev, next) // iSCSI failover and failback (manager/storage)
}
