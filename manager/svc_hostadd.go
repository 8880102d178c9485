package manager

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
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
	var bad []apierr.Field
	if err := state.CheckName("host", h.Name); err != nil {
		bad = append(bad, apierr.Field{Field: "name", Description: err.Error()})
	}
	for _, f := range []struct {
		field string
		val   *string
		need  bool
	}{{"hypervisor_ip", &h.HypervisorIp, true}, {"cvm_ip", &h.CvmIp, false}} {
		if *f.val == "" {
			if f.need {
				bad = append(bad, apierr.Field{Field: f.field, Description: f.field + " is required, e.g. " + f.field + "=127.0.0.2"})
			}
			continue
		}
		ip, err := netip.ParseAddr(*f.val)
		if err != nil {
			bad = append(bad, apierr.Field{Field: f.field, Description: fmt.Sprintf("%s %q is not an IP address, e.g. 127.0.0.2", f.field, *f.val)})
			continue
		}
		*f.val = ip.String()
	}
	if h.CvmIp != "" && h.CvmIp == h.HypervisorIp {
		bad = append(bad, apierr.Field{Field: "cvm_ip", Description: "cvm_ip must differ from hypervisor_ip (the CVM is a VM with its own address)"})
	}
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
		other := m.hosts[joined.Uuid]
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
				m.putHostLocked(joined, rev)
				// Heard from just now: the heartbeat monitor must not find it silent.
				m.beats.Seen(joined.Uuid, timeNow())
			},
			message: fmt.Sprintf("host %s (%s) added: %d cores, %s, uuid %s", joined.Name, joined.HypervisorIp, joined.CpuCores, bytesText(joined.MemoryBytes), joined.Uuid),
		}, nil
	})
}

// checkNewHostLocked refuses a name or address already in use.
func (m *Manager) checkNewHostLocked(h *acliv1.Host) error {
	if other := m.hostByName[h.Name]; other != nil {
		return apierr.AlreadyExists("host", h.Name, "host names are unique (uuid "+other.pb.Uuid+")")
	}
	if other := m.hostByIP[h.HypervisorIp]; other != nil {
		return apierr.AlreadyExists("host", h.HypervisorIp, "hypervisor IP "+h.HypervisorIp+" belongs to host "+other.pb.Name)
	}
	for _, o := range m.hostList {
		if h.CvmIp != "" && (o.pb.CvmIp == h.CvmIp || o.pb.HypervisorIp == h.CvmIp) {
			return apierr.AlreadyExists("host", h.CvmIp, "cvm_ip "+h.CvmIp+" is already used by host "+o.pb.Name)
		}
		if o.pb.CvmIp == h.HypervisorIp {
			return apierr.AlreadyExists("host", h.HypervisorIp, "hypervisor IP "+h.HypervisorIp+" is the CVM address of host "+o.pb.Name)
		}
	}
	for _, id := range []string{"host-name:" + h.Name, "host-ip:" + h.HypervisorIp} {
		if t := m.busy[id]; t != nil {
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

// removableLocked says why a host cannot leave: VMs run there, return there
// after maintenance, or are pinned to it.
func (m *Manager) removableLocked(r *hostRec) error {
	h := r.pb
	var running, returning, pinned []string
	for _, v := range m.vms {
		switch {
		case placed(v.pb) && v.pb.HostUuid == h.Uuid:
			running = append(running, v.pb.Name)
		case v.pb.OriginalHostUuid == h.Uuid:
			returning = append(returning, v.pb.Name)
		}
		if slices.Contains(v.pb.HostAffinity, h.Uuid) {
			pinned = append(pinned, v.pb.Name)
		}
	}
	list := func(names []string) string {
		slices.Sort(names)
		if len(names) > 5 {
			names = append(names[:5:5], "...")
		}
		return strings.Join(names, ", ")
	}
	switch {
	case len(running) > 0:
		return apierr.Precondition("HOST_HAS_VMS", "host:"+h.Name, "host %s runs %d VM(s) (%s); migrate them away or power them off first (host.enter_maintenance_mode %s)", h.Name, len(running), list(running), h.Name)
	case len(returning) > 0:
		return apierr.Precondition("HOST_HAS_VMS", "host:"+h.Name, "%d VM(s) (%s) return to host %s when it exits maintenance; run host.exit_maintenance_mode %s or migrate them first", len(returning), list(returning), h.Name, h.Name)
	case len(pinned) > 0:
		return apierr.Precondition("HOST_AFFINITY", "host:"+h.Name, "%d VM(s) (%s) have host affinity to %s; change it first (vm.affinity_set)", len(pinned), list(pinned), h.Name)
	}
	return nil
}

func (m *Manager) deleteHostLocked(id string) {
	r := m.hosts[id]
	if r == nil {
		return
	}
	delete(m.hosts, id)
	if m.hostByName[r.pb.Name] == r {
		delete(m.hostByName, r.pb.Name)
	}
	if m.hostByIP[r.pb.HypervisorIp] == r {
		delete(m.hostByIP, r.pb.HypervisorIp)
	}
	m.hostList = slices.DeleteFunc(m.hostList, func(x *hostRec) bool { return x == r })
	m.beats.Forget(id)
}
