package maintenance

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// Taking is what a running task is taking out of service on a host.
type Taking int

const (
	TakingNothing Taking = iota
	TakingHost           // host.enter_maintenance_mode
	TakingCvm            // host.enter_cvm_maintenance_mode
)

// TakingOp is what a task of operation op takes out of its host.
func TakingOp(op acliv1.TaskOperation) Taking {
	switch op {
	case acliv1.TaskOperation_kHostEnterMaintenanceMode:
		return TakingHost
	case acliv1.TaskOperation_kCvmEnterMaintenanceMode:
		return TakingCvm
	}
	return TakingNothing
}

// Budget applies the RF-1 budget (state.CheckRedundancy, the rule commit
// enforces) to taking host h, or its CVM, out: what is "cannot take out"
// in the refusal. A host whose running task is taking it (or its CVM) out
// counts as out already, so the refusal comes with the request rather than
// at the commit. It returns nil when the budget allows it, else one
// REDUNDANCY violation naming the first host already out.
func Budget(rf int, hosts []*acliv1.Host, taking func(host string) Taking, h *acliv1.Host, cvm bool, what string) []apierr.Violation {
	all := make([]*acliv1.Host, 0, len(hosts))
	for _, pb := range hosts {
		if pb.Uuid != h.Uuid && !state.OutByIntent(pb) {
			switch taking(pb.Uuid) {
			case TakingHost:
				pb = proto.Clone(pb).(*acliv1.Host)
				pb.MaintenanceRequested = true
				if pb.NodeState == acliv1.NodeState_AcropolisNormal {
					pb.NodeState = acliv1.NodeState_EnteringMaintenanceMode
				}
			case TakingCvm:
				pb = proto.Clone(pb).(*acliv1.Host)
				pb.CvmMaintenanceRequested = true
				if pb.CvmState == acliv1.CvmState_kCvmUp {
					pb.CvmState = acliv1.CvmState_kCvmMaintenance
				}
			}
		}
		all = append(all, pb)
	}
	next := proto.Clone(h).(*acliv1.Host)
	if cvm {
		next.CvmMaintenanceRequested = true
	} else {
		next.MaintenanceRequested = true
	}
	err := state.CheckRedundancy(rf, all, h, next)
	if err == nil {
		return nil
	}
	subject := "host:" + h.Name
	if re, ok := err.(*state.RedundancyError); ok && len(re.Out) > 0 {
		subject = "host:" + strings.Fields(re.Out[0])[0]
	}
	return []apierr.Violation{{Type: Redundancy, Subject: subject,
		Description: fmt.Sprintf("cannot %s %s (%s): %v", what, h.Name, h.HypervisorIp, err)}}
}
