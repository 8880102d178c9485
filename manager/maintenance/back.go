package maintenance

import (
	"context"
	"fmt"
	"sync"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// A host whose maintenance was asked comes back from a failure
// EnteringMaintenanceMode when VMs are still recorded running there
// (state.Recovered). The operator asked for maintenance and expects it to
// complete, so its evacuation goes on by itself (HostBack), as after a
// leader change, under a task the operator sees.

// DefaultReportWait bounds how long the evacuation of a host that came back
// waits for the host's report of what it runs before planning anyway.
const DefaultReportWait = 5 * time.Second

// reports counts, per host, the complete reports of what it runs applied
// so far (Reported), and wakes who waits for the next one.
type reports struct {
	mu   sync.Mutex
	n    map[string]uint64
	next chan struct{}
}

// Reported is told that host's complete report of what it runs was
// applied to the VM records.
func (s *Service) Reported(host string) {
	r := &s.reports
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]uint64{}
	}
	r.n[host]++
	if r.next != nil {
		close(r.next)
		r.next = nil
	}
}

// reportsOf is how many reports of host were applied so far, and a channel
// closed at the next one.
func (s *Service) reportsOf(host string) (uint64, <-chan struct{}) {
	r := &s.reports
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next == nil {
		r.next = make(chan struct{})
	}
	return r.n[host], r.next
}

// awaitReport waits until a report of host later than the after-th is
// applied, or ReportWait passes.
func (s *Service) awaitReport(ctx context.Context, host string, after uint64) error {
	wait := s.ReportWait
	if wait <= 0 {
		wait = DefaultReportWait
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		n, next := s.reportsOf(host)
		if n > after {
			return nil
		}
		select {
		case <-next:
		case <-timeout.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// HostBack is told that host id came back from a failure. If it came back
// EnteringMaintenanceMode and no task holds it, its evacuation goes on
// under a new task of clusterd's, refused by the preflight as the
// operator's request would be (the redundancy budget, a task moving VMs
// there): the task then fails with the reason and the host stays
// EnteringMaintenanceMode. The task plans once the host has reported what
// it runs (or after ReportWait): a VM recorded running there may have died
// with the host.
func (s *Service) HostBack(ctx context.Context, id string) {
	seen, _ := s.reportsOf(id)
	var h *acliv1.Host
	var t *tasks.Task
	var refused error
	_ = s.M.Locked(func(l Locked) error {
		s.DB.View(func(tx *state.Tx) { h = tx.Host(id) })
		if h == nil || h.NodeState != acliv1.NodeState_EnteringMaintenanceMode || l.Holder(id) != nil {
			return nil
		}
		t = l.Begin(acliv1.TaskOperation_kHostEnterMaintenanceMode, []*acliv1.EntityRef{state.HostRef(h)}, h.Uuid)
		if vs := Violations(Preflight(s.hostBlockers(l, h, false), nil)); len(vs) > 0 {
			refused = apierr.FailedPrecondition(fmt.Sprintf("host %s cannot enter maintenance mode", label(h)), vs...)
		}
		return nil
	})
	if t == nil {
		return
	}
	action, mode := scheduler.Block, acliv1.MaintenanceMode_kMaintenanceLive
	e := s.evacuation(t, h, action, mode, s.M.MaxMigrations())
	_, err := s.M.Launch(ctx, t, func(ctx context.Context) (Done, error) {
		if refused != nil {
			return Done{}, refused
		}
		s.M.Log(t, fmt.Sprintf("host %s came back from a failure entering maintenance mode; its evacuation goes on", label(h)))
		if err := s.awaitReport(ctx, id, seen); err != nil {
			return Done{}, e.interrupted(err)
		}
		var plan *scheduler.Plan
		err := s.M.Locked(func(l Locked) error {
			p, err := Plan(l.Snapshot(), h.Uuid, action, mode)
			if err != nil {
				return apierr.Internal("planning the evacuation", err)
			}
			l.Reserve(t, p)
			plan = p
			return nil
		})
		if err != nil {
			return Done{}, err
		}
		return e.run(ctx, plan)
	})
	if err != nil && s.Log != nil {
		s.Log.Warn("carrying on the evacuation of a host that came back", "host", h.Name, "err", err)
	}
}
