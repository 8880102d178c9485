package state

import (
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// HostView is host h as clients read it: its record with why nothing may
// be placed there, whether it is connected, what the VMs placed there (and
// those on their way) use, and who holds each of its devices.
func (tx *Tx) HostView(h *acliv1.Host) *acliv1.Host {
	out := proto.Clone(h).(*acliv1.Host)
	if why := Unavailable(h); why != "" {
		out.Schedulable = false
		if h.Schedulable || h.SchedulableReason == "" {
			out.SchedulableReason = why
		}
	}
	out.Connected = h.NodeState != acliv1.NodeState_kNodeDown
	out.MemoryUsedBytes = tx.MemoryTaken(h.Uuid)
	out.VcpusUsed, out.NumVms = tx.HostUse(h.Uuid)
	out.Devices = tx.WithHolders(h)
	return out
}
