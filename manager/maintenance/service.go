package maintenance

import (
	"context"
	"log/slog"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// Service serves the maintenance requests behind manager/rpc's host
// adapter. It reads the committed records through DB, runs its changes as
// tasks, and reaches the rest of the manager only through its callbacks.
type Service struct {
	DB *state.DB
	M  Manager
	// Tasks begins the quick tasks (CVM maintenance, requests that change
	// nothing).
	Tasks tasks.Starter
	// Publish tells an event of task.
	Publish func(typ, task string, refs []*acliv1.EntityRef, format string, args ...any)
	// CvmChanged is told of a committed change of a host's CVM state
	// (iSCSI sessions follow the CVMs that serve).
	CvmChanged func(prev, next *acliv1.Host)
	// Log is told of the evacuations carried on after a leader change or
	// a host's return.
	Log *slog.Logger
	// ReportWait bounds how long the evacuation of a host that came back
	// waits for its report (DefaultReportWait when 0).
	ReportWait time.Duration

	reports reports
}

// findHost is the committed host ref names.
func (s *Service) findHost(ref string) (h *acliv1.Host, rev int64, err error) {
	s.DB.View(func(tx *state.Tx) {
		if h, err = tx.FindHost("host", ref); err == nil {
			rev = tx.Rev(state.HostKey(h.Uuid))
		}
	})
	return h, rev, err
}

// beginOn begins a quick task of op holding the host refs[0] names and
// reads that host's record as the task finds it; a host gone meanwhile
// drops the task (not found as ref).
func (s *Service) beginOn(ctx context.Context, op acliv1.TaskOperation, refs []*acliv1.EntityRef, ref string) (t tasks.Quick, cur *acliv1.Host, rev int64, err error) {
	id := refs[0].Uuid
	if t, err = s.Tasks.Begin(ctx, "host", op, refs, id); err != nil {
		return nil, nil, 0, err
	}
	s.DB.View(func(tx *state.Tx) { cur, rev = tx.Host(id), tx.Rev(state.HostKey(id)) })
	if cur == nil {
		t.Drop()
		return nil, nil, 0, apierr.NotFound("host", ref, nil)
	}
	return t, cur, rev, nil
}

// budget applies the RF-1 budget to taking host h (or its CVM) out,
// counting what running tasks take out (Budget).
func (s *Service) budget(h *acliv1.Host, what string, cvm bool) (vs []apierr.Violation) {
	s.M.Read(func(r Reader) { vs = s.lockedBudget(r, h, what, cvm) })
	return vs
}

// EnterCvmMaintenanceMode takes a host's CVM out of storage service. It
// counts against the same redundancy budget as host maintenance.
func (s *Service) EnterCvmMaintenanceMode(ctx context.Context, req *acliv1.CvmMaintenanceRequest) (*acliv1.Task, error) {
	return s.cvm(ctx, req.Host, true)
}

// ExitCvmMaintenanceMode returns a host's CVM to storage service.
func (s *Service) ExitCvmMaintenanceMode(ctx context.Context, req *acliv1.CvmMaintenanceRequest) (*acliv1.Task, error) {
	return s.cvm(ctx, req.Host, false)
}

// cvm decides the request (Cvm) on the host as the task that holds it
// finds it, and commits the change with the task's end.
func (s *Service) cvm(ctx context.Context, ref string, enter bool) (*acliv1.Task, error) {
	op := acliv1.TaskOperation_kCvmExitMaintenanceMode
	if enter {
		op = acliv1.TaskOperation_kCvmEnterMaintenanceMode
	}
	h, _, err := s.findHost(ref)
	if err != nil {
		return nil, err
	}
	refs := []*acliv1.EntityRef{state.HostRef(h), {Kind: acliv1.EntityKind_kCvm, Uuid: h.Uuid, Name: h.CvmIp}}
	t, cur, rev, err := s.beginOn(ctx, op, refs, ref)
	if err != nil {
		return nil, err
	}
	c, err := Cvm(cur, enter, func() []apierr.Violation { return s.budget(cur, "take out the CVM of", true) })
	if err != nil {
		t.Drop()
		return nil, err
	}
	if c.Noop != "" {
		return t.Commit(ctx, nil, c.Noop)
	}
	pb, err := t.Commit(ctx, []state.Write{{Key: state.HostKey(cur.Uuid), Msg: c.Next, Rev: rev}}, c.Message)
	if err != nil {
		return nil, err
	}
	s.Publish("cvm", pb.Uuid, refs, "%s", c.Message)
	s.CvmChanged(cur, c.Next)
	return pb, nil
}
