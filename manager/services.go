package manager

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/ha"
	"github.com/acli-dev/acli/manager/state"
)

// ---- ClusterService ----

// clusterService is the cluster feature behind manager/rpc's adapter.
type clusterService struct {
	m *Manager
}

// clusterFeature serves the cluster service: the record from here, the
// HA and ADS settings from manager/ha.
type clusterFeature struct {
	clusterService
	*ha.Settings
}

func (s clusterService) GetCluster(ctx context.Context, _ *acliv1.GetClusterRequest) (*acliv1.Cluster, error) {
	m := s.m
	c := proto.Clone(m.clusterRecord()).(*acliv1.Cluster)
	c.Version = Version
	c.Driver = m.drv.Name()
	c.NumHosts = int32(m.numHosts())
	c.NumVms = int32(m.numVms())
	return c, nil
}

func (s clusterService) GetClusterStatus(ctx context.Context, _ *acliv1.GetClusterStatusRequest) (*acliv1.ClusterStatus, error) {
	if s.m.status == nil {
		return nil, status.Error(codes.Unimplemented, "this clusterd does not report its management plane")
	}
	return s.m.status(ctx)
}

// ---- HostService ----

// hostService is the host feature behind manager/rpc's adapter.
type hostService struct {
	m *Manager
}

func (s hostService) ListHosts(ctx context.Context, _ *acliv1.ListHostsRequest) (*acliv1.ListHostsResponse, error) {
	m := s.m
	hosts := m.hostRecs()
	out := &acliv1.ListHostsResponse{Hosts: make([]*acliv1.Host, len(hosts))}
	for i, h := range hosts {
		out.Hosts[i] = m.hostOut(h)
	}
	return out, nil
}

func (s hostService) GetHost(ctx context.Context, req *acliv1.GetHostRequest) (*acliv1.Host, error) {
	m := s.m
	h, err := m.hostLocked("host", req.Host)
	if err != nil {
		return nil, err
	}
	return m.hostOut(h), nil
}

func (s hostService) UpdateHost(ctx context.Context, req *acliv1.UpdateHostRequest) (*acliv1.Task, error) {
	m := s.m
	m.mu.Lock()
	h, err := m.hostLocked("host", req.Host)
	if err == nil {
		err = m.checkBusyLocked("host", h.pb.Name, h.pb.Uuid)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := h.pb, h.rev
	next := proto.Clone(cur).(*acliv1.Host)
	next.Schedulable = *req.Schedulable
	next.SchedulableReason = ""
	msg := fmt.Sprintf("host %s is schedulable", cur.Name)
	if !next.Schedulable {
		next.SchedulableReason = req.Reason
		msg = fmt.Sprintf("host %s is not schedulable", cur.Name)
		if req.Reason != "" {
			msg += ": " + req.Reason
		}
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kHostUpdate, []*acliv1.EntityRef{state.HostRef(cur)}, cur.Uuid)
	m.mu.Unlock()
	return m.quick(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: state.HostKey(cur.Uuid), msg: next, rev: rev}},
			message: msg,
		}, nil
	})
}

// ---- SimService ----

// simService is the fault injection feature behind manager/rpc's adapter.
type simService struct {
	m *Manager
}

// fault injects a fault and applies the driver's report of it: the one
// path by which the fault reaches the host's record, completed even if the
// caller goes away, so the answer shows the new state.
func (s simService) fault(ctx context.Context, ref string, do func(driver.FaultInjector, string) (driver.HostEvent, error)) (*acliv1.SimResponse, error) {
	m := s.m
	fi, ok := m.drv.(driver.FaultInjector)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "fault injection needs the sim driver; this clusterd runs the %s driver", m.drv.Name())
	}
	h, err := m.hostLocked("host", ref)
	if err != nil {
		return nil, err
	}
	id, name := h.pb.Uuid, h.pb.Name
	ev, err := do(fi, id)
	if err != nil {
		return nil, apierr.Precondition("SIM", "host:"+name, "%v", err)
	}
	if err := m.hostEv.Apply(context.WithoutCancel(ctx), ev); err != nil {
		return nil, err
	}
	if now := m.hostAt(id); now != nil {
		h = now
	}
	return &acliv1.SimResponse{Host: m.hostOut(h)}, nil
}

func (s simService) FailHost(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return s.fault(ctx, req.Host, driver.FaultInjector.FailHost)
}
func (s simService) RecoverHost(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return s.fault(ctx, req.Host, driver.FaultInjector.RecoverHost)
}
func (s simService) FailCvm(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return s.fault(ctx, req.Host, driver.FaultInjector.FailCvm)
}
func (s simService) RecoverCvm(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return s.fault(ctx, req.Host, driver.FaultInjector.RecoverCvm)
}
