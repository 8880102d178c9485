package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/hostsync"
	"github.com/acli-dev/acli/manager/state"
)

// Hosts join (host.add) and leave (host.remove) at run time on drivers that
// implement driver.HostJoiner (libvirt). The driver connects and reports the
// host's identity and capacity; the manager records it.

func (m *Manager) addHost(ctx context.Context, req *acliv1.AddHostRequest) (*acliv1.Task, error) {
	joiner, err := m.joiner("host.add")
	if err != nil {
		return nil, err
	}
	h := &acliv1.Host{Name: req.Name, HypervisorIp: req.HypervisorIp, CvmIp: req.CvmIp, LibvirtUri: req.LibvirtUri}
	bad := hostsync.CheckJoin(h)
	if err := joiner.CheckHost(h); err != nil {
		bad = append(bad, apierr.Field{Field: "libvirt_uri", Description: err.Error()})
	}
	if len(bad) > 0 {
		return nil, apierr.InvalidArgument(bad...)
	}

	m.mu.Lock()
	err = m.checkNewHostLocked(h)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	nameLock, ipLock := "host-name:"+h.Name, "host-ip:"+h.HypervisorIp
	t := m.newTaskLocked(acliv1.TaskOperation_kHostAdd, []*acliv1.EntityRef{hostRef(h)}, nameLock, ipLock)
	m.mu.Unlock()
	return m.launch(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		m.progress(t, 10, "connecting to %s", h.LibvirtUri)
		joined, err := joiner.JoinHost(ctx, h)
		if errors.Is(err, driver.ErrHostExists) {
			return outcome{}, apierr.Precondition("HOST_EXISTS", "host:"+h.Name, "host %s cannot join: %v", h.Name, strings.TrimPrefix(err.Error(), driver.ErrHostExists.Error()+": "))
		}
		if err != nil {
			return outcome{}, fmt.Errorf("host %s cannot join: %w", h.Name, err)
		}
		m.mu.RLock()
		other := m.hostAt(joined.Uuid)
		m.mu.RUnlock()
		if other != nil {
			joiner.LeaveHost(joined.Uuid)
			return outcome{}, apierr.Precondition("HOST_EXISTS", "host:"+other.pb.Name, "the host at %s (uuid %s) is already in the cluster as %s", h.LibvirtUri, joined.Uuid, hostLabel(other.pb))
		}
		m.mu.Lock()
		// The UUID is known only now: the task names the host by it too.
		t.Update(func(pb *acliv1.Task) { pb.Entities[0].Uuid = joined.Uuid })
		m.mu.Unlock()
		m.progress(t, 80, "recording host %s: %d cores, %s", h.Name, joined.CpuCores, bytesText(joined.MemoryBytes))
		return outcome{
			writes: []write{{key: hostKey(joined.Uuid), msg: joined, rev: 0}},
			apply: func(rev int64) {
				// Heard from just now: the heartbeat monitor must not find it silent.
				m.beats.Seen(joined.Uuid, timeNow())
			},
			message: fmt.Sprintf("host %s (%s) added: %d cores, %s, uuid %s", joined.Name, joined.HypervisorIp, joined.CpuCores, bytesText(joined.MemoryBytes), joined.Uuid),
		}, nil
	})
}

// checkNewHostLocked refuses a name or address already in use, or taken
// by a host joining now.
func (m *Manager) checkNewHostLocked(h *acliv1.Host) error {
	var err error
	m.db.View(func(tx *state.Tx) { err = hostsync.CheckNew(tx, h) })
	if err != nil {
		return err
	}
	for _, id := range []string{"host-name:" + h.Name, "host-ip:" + h.HypervisorIp} {
		if t := m.busyLocked(id); t != nil {
			return apierr.Busy("host", h.Name, t.PB.Uuid, t.PB.Operation.String())
		}
	}
	return nil
}

// joiner is the driver as a HostJoiner, or why hosts cannot join or leave.
func (m *Manager) joiner(op string) (driver.HostJoiner, error) {
	j, ok := m.drv.(driver.HostJoiner)
	if !ok {
		return nil, apierr.Precondition("DRIVER", "cluster", "%s needs clusterd --driver libvirt; the %s driver's hosts come from its configuration (clusterd --sim N or --sim-config FILE)", op, m.drv.Name())
	}
	return j, nil
}

func (m *Manager) removeHost(ctx context.Context, req *acliv1.RemoveHostRequest) (*acliv1.Task, error) {
	joiner, err := m.joiner("host.remove")
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	r, err := m.hostLocked("host", req.Host)
	if err == nil {
		err = m.checkBusyLocked("host", r.pb.Name, r.pb.Uuid)
	}
	if err == nil {
		err = m.removableLocked(r)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := r.pb, r.rev
	t := m.newTaskLocked(acliv1.TaskOperation_kHostRemove, []*acliv1.EntityRef{hostRef(cur)}, cur.Uuid)
	m.mu.Unlock()
	return m.launch(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		// Checked again: a VM may have powered on here since the request.
		m.mu.RLock()
		err := m.removableLocked(r)
		m.mu.RUnlock()
		if err != nil {
			return outcome{}, err
		}
		if err := joiner.LeaveHost(cur.Uuid); err != nil {
			return outcome{}, err
		}
		return outcome{
			writes:  []write{{key: hostKey(cur.Uuid), rev: rev}},
			apply:   func(int64) { m.deleteHostLocked(cur.Uuid) },
			message: fmt.Sprintf("host %s (%s) removed from the cluster", cur.Name, cur.HypervisorIp),
		}, nil
	})
}

// removableLocked says why a host cannot leave (hostsync.CheckLeave).
func (m *Manager) removableLocked(r *hostRec) error {
	var err error
	m.db.View(func(tx *state.Tx) { err = hostsync.CheckLeave(tx, r.pb) })
	return err
}

func (m *Manager) deleteHostLocked(id string) {
	r := m.hostAt(id)
	if r == nil {
		return
	}
	m.beats.Forget(id)
}
