package maintenance

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// Cordon is host cur with its schedulable flag set (kubectl cordon and
// uncordon): nothing new is placed on a host that is not schedulable, and
// no host state change clears it, so the operator's intent survives
// failures and restarts. A reason is kept only with schedulable false.
func Cordon(cur *acliv1.Host, schedulable bool, reason string) (next *acliv1.Host, message string) {
	next = proto.Clone(cur).(*acliv1.Host)
	next.Schedulable, next.SchedulableReason = schedulable, ""
	if schedulable {
		return next, fmt.Sprintf("host %s is schedulable", cur.Name)
	}
	next.SchedulableReason = reason
	message = fmt.Sprintf("host %s is not schedulable", cur.Name)
	if reason != "" {
		message += ": " + reason
	}
	return next, message
}

// UpdateHost cordons or uncordons a host (host.update schedulable=...),
// as a task that holds the host, committed on the record the task finds.
func (s *Service) UpdateHost(ctx context.Context, req *acliv1.UpdateHostRequest) (*acliv1.Task, error) {
	if req.Schedulable == nil {
		return nil, apierr.BadField("schedulable", "nothing to update: give schedulable=true|false (and a reason)")
	}
	h, _, err := s.findHost(req.Host)
	if err != nil {
		return nil, err
	}
	t, cur, rev, err := s.beginOn(ctx, acliv1.TaskOperation_kHostUpdate, []*acliv1.EntityRef{state.HostRef(h)}, req.Host)
	if err != nil {
		return nil, err
	}
	next, msg := Cordon(cur, *req.Schedulable, req.Reason)
	return t.Commit(ctx, []state.Write{{Key: state.HostKey(cur.Uuid), Msg: next, Rev: rev}}, msg)
}
