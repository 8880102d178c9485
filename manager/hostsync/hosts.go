package hostsync

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
)

// Hosts answers host.list and host.get: the committed records as clients
// read them (state.Tx.HostView) with the last heartbeat of each.
type Hosts struct {
	DB *state.DB
	// LastBeat is when a host was last heard from (zero: never).
	LastBeat func(host string) time.Time
}

func (s *Hosts) ListHosts(ctx context.Context, _ *acliv1.ListHostsRequest) (*acliv1.ListHostsResponse, error) {
	out := &acliv1.ListHostsResponse{}
	s.DB.View(func(tx *state.Tx) {
		for _, h := range tx.Hosts() {
			out.Hosts = append(out.Hosts, s.view(tx, h))
		}
	})
	return out, nil
}

func (s *Hosts) GetHost(ctx context.Context, req *acliv1.GetHostRequest) (out *acliv1.Host, err error) {
	s.DB.View(func(tx *state.Tx) {
		var h *acliv1.Host
		if h, err = tx.FindHost("host", req.Host); err == nil {
			out = s.view(tx, h)
		}
	})
	return out, err
}

func (s *Hosts) view(tx *state.Tx, h *acliv1.Host) *acliv1.Host {
	out := tx.HostView(h)
	if hb := s.LastBeat(h.Uuid); !hb.IsZero() {
		out.LastHeartbeat = timestamppb.New(hb)
	}
	return out
}

// Faults injects host and CVM faults (the sim driver's) and applies the
// driver's report of each through Events.Apply, the one path by which a
// fault reaches the host's record. It completes even if the caller goes
// away, so the answer shows the new state.
type Faults struct {
	Driver driver.Driver
	Events *Events
	Hosts  *Hosts
}

func (f *Faults) fault(ctx context.Context, ref string, do func(driver.FaultInjector, string) (driver.HostEvent, error)) (*acliv1.SimResponse, error) {
	fi, ok := f.Driver.(driver.FaultInjector)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "fault injection needs the sim driver; this clusterd runs the %s driver", f.Driver.Name())
	}
	var h *acliv1.Host
	var err error
	f.Hosts.DB.View(func(tx *state.Tx) { h, err = tx.FindHost("host", ref) })
	if err != nil {
		return nil, err
	}
	ev, err := do(fi, h.Uuid)
	if err != nil {
		return nil, apierr.Precondition("SIM", "host:"+h.Name, "%v", err)
	}
	if err := f.Events.Apply(context.WithoutCancel(ctx), ev); err != nil {
		return nil, err
	}
	f.Hosts.DB.View(func(tx *state.Tx) {
		if now := tx.Host(h.Uuid); now != nil {
			h = now
		}
		h = f.Hosts.view(tx, h)
	})
	return &acliv1.SimResponse{Host: h}, nil
}

func (f *Faults) FailHost(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return f.fault(ctx, req.Host, driver.FaultInjector.FailHost)
}

func (f *Faults) RecoverHost(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return f.fault(ctx, req.Host, driver.FaultInjector.RecoverHost)
}

func (f *Faults) FailCvm(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return f.fault(ctx, req.Host, driver.FaultInjector.FailCvm)
}

func (f *Faults) RecoverCvm(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return f.fault(ctx, req.Host, driver.FaultInjector.RecoverCvm)
}
