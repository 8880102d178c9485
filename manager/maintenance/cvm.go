package maintenance

import (
	"errors"
	"fmt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// CvmChange is what a CVM maintenance request does to its host.
type CvmChange struct {
	// Noop, when set, is the task's line: nothing changes.
	Noop string
	// Next is the host record after the change; Message says it.
	Next    *acliv1.Host
	Message string
}

// Cvm decides a request to take host cur's CVM out of storage service
// (enter) or to return it. budget applies the RF-1 budget to taking it out
// (Budget); it is asked only when nothing else refuses.
func Cvm(cur *acliv1.Host, enter bool, budget func() []apierr.Violation) (CvmChange, error) {
	cvm := fmt.Sprintf("cvm %s of host %s", cur.CvmIp, label(cur))
	asked := state.WithIntent(cur).CvmMaintenanceRequested
	switch {
	case enter && asked:
		return CvmChange{Noop: cvm + " is already in maintenance mode"}, nil
	case !enter && !asked:
		return CvmChange{Noop: cvm + " is not in maintenance mode"}, nil
	case cur.NodeState == acliv1.NodeState_kNodeDown:
		return CvmChange{}, apierr.Precondition(HostDown, "host:"+cur.Name, "host %s is down; recover it first", label(cur))
	case enter && cur.CvmState == acliv1.CvmState_kCvmDown:
		return CvmChange{}, apierr.Precondition("CVM_DOWN", "cvm:"+cur.CvmIp, "%s is down; it is already out of service", cvm)
	case enter:
		if vs := budget(); len(vs) > 0 {
			return CvmChange{}, apierr.FailedPrecondition(cvm+" cannot enter maintenance mode", vs...)
		}
	}
	change, msg := state.ExitCvmMaintenance, cvm+" exited maintenance mode"
	if enter {
		change, msg = state.EnterCvmMaintenance, cvm+" entered maintenance mode"
	}
	next, err := state.TransitionHost(cur, change)
	if te := (*state.TransitionError)(nil); errors.As(err, &te) {
		return CvmChange{}, apierr.Precondition("HOST_STATE", "host:"+te.Host, "%v", te)
	}
	if err != nil {
		return CvmChange{}, err
	}
	return CvmChange{Next: next, Message: msg}, nil
}
