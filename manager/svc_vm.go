package manager

import (
	"fmt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// vmService is the VM feature behind manager/rpc's adapter.
type vmService struct {
	m *Manager
}

// chooseHostLocked picks where a VM powers on: the named host if it can
// take it, else the placement function's choice. Refusals list every
// violated rule (per host when placement finds nothing).
func (m *Manager) chooseHostLocked(v *acliv1.Vm, named string) (*hostRec, error) {
	preq := scheduler.PlaceRequest{VmName: v.Name, MemoryBytes: state.MemoryReserved(v), Vcpus: int(v.NumVcpus), Affinity: v.HostAffinity, Devices: m.deviceFit(v)}
	if named != "" {
		h, err := m.hostLocked("host", named)
		if err != nil {
			return nil, err
		}
		for _, c := range m.candidatesLocked() {
			if c.UUID != h.pb.Uuid {
				continue
			}
			if rej := scheduler.CheckCandidate(c, preq); rej != nil {
				return nil, apierr.FailedPrecondition(fmt.Sprintf("cannot power on vm %s on host %s", v.Name, h.pb.Name), violation(*rej))
			}
		}
		return h, nil
	}
	if r, ok := m.placeWithRulesLocked(v); ok {
		return r, nil
	}
	id, rejs := m.place(m.candidatesLocked(), preq)
	if id == "" {
		vs := make([]apierr.Violation, len(rejs))
		for i, r := range rejs {
			vs[i] = violation(r)
		}
		if len(vs) == 0 {
			return nil, apierr.Precondition("NO_HOST", "cluster", "vm %s cannot power on: the cluster has no hosts", v.Name)
		}
		return nil, apierr.FailedPrecondition(fmt.Sprintf("vm %s (%s) fits on no host", v.Name, scheduler.Bytes(v.MemoryBytes)), vs...)
	}
	return m.hostAt(id), nil
}

func violation(r scheduler.PlaceRejection) apierr.Violation {
	return apierr.Violation{
		Type: r.Kind, Subject: "host:" + r.Host.Name,
		Description: fmt.Sprintf("host %s (%s): %s", r.Host.Name, r.Host.IP, r.Reason),
	}
}
