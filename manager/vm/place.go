package vm

import (
	"fmt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// Placement is what choosing a power-on's host reads of the manager's
// placement, taken at one instant among its other placements.
type Placement struct {
	// Hosts is placement's snapshot: each host with its memory taken
	// (arrivals included), vCPUs and VMs.
	Hosts []scheduler.Candidate
	// ByRules places a VM of an affinity or anti-affinity group, which
	// needs the other VMs: the host's UUID, false when the VM is in no
	// group or the groups place it nowhere.
	ByRules func() (string, bool)
	// Place is placement's function for every other VM.
	Place scheduler.PlaceFunc
	// Devices says why a host cannot give the VM its devices ("" when it
	// can); nil when it has none.
	Devices func(host string) string
}

// ChooseHost picks where v powers on: the named host (by name, UUID or
// hypervisor IP) if it can take it, else the groups' choice, else the
// placement function's. A refusal lists every rule violated, per host
// when no host can take v.
func ChooseHost(db *state.DB, v *acliv1.Vm, named string, p Placement) (*acliv1.Host, error) {
	req := scheduler.PlaceRequest{VmName: v.Name, MemoryBytes: state.MemoryReserved(v), Vcpus: int(v.NumVcpus), Affinity: v.HostAffinity, Devices: p.Devices}
	var h *acliv1.Host
	var err error
	if named != "" {
		db.View(func(tx *state.Tx) { h, err = tx.FindHost("host", named) })
		if err != nil {
			return nil, err
		}
		for _, c := range p.Hosts {
			if c.UUID != h.Uuid {
				continue
			}
			if rej := scheduler.CheckCandidate(c, req); rej != nil {
				return nil, apierr.FailedPrecondition(fmt.Sprintf("cannot power on vm %s on host %s", v.Name, h.Name), violation(*rej))
			}
		}
		return h, nil
	}
	id, ok := "", false
	if p.ByRules != nil {
		id, ok = p.ByRules()
	}
	if !ok {
		var rejs []scheduler.PlaceRejection
		if id, rejs = p.Place(p.Hosts, req); id == "" {
			if len(rejs) == 0 {
				return nil, apierr.Precondition("NO_HOST", "cluster", "vm %s cannot power on: the cluster has no hosts", v.Name)
			}
			vs := make([]apierr.Violation, len(rejs))
			for i, r := range rejs {
				vs[i] = violation(r)
			}
			return nil, apierr.FailedPrecondition(fmt.Sprintf("vm %s (%s) fits on no host", v.Name, scheduler.Bytes(v.MemoryBytes)), vs...)
		}
	}
	db.View(func(tx *state.Tx) { h = tx.Host(id) })
	if h == nil {
		return nil, apierr.Precondition("NO_HOST", "cluster", "vm %s cannot power on: host %s left the cluster", v.Name, id)
	}
	return h, nil
}

// violation is a host's rejection as the API lists it.
func violation(r scheduler.PlaceRejection) apierr.Violation {
	return apierr.Violation{
		Type: r.Kind, Subject: "host:" + r.Host.Name,
		Description: fmt.Sprintf("host %s (%s): %s", r.Host.Name, r.Host.IP, r.Reason),
	}
}
