package vm

import (
	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// bindDevices returns v with a free device of each of its passthrough
// groups on host bound, or refuses the power-on naming the group none is
// free of. Two power-ons racing for one device both bind it; the DEVICE
// rule at commit refuses the second.
func (s *Service) bindDevices(v *acliv1.Vm, host string) (*acliv1.Vm, error) {
	if len(v.Devices) == 0 {
		return v, nil
	}
	var out *acliv1.Vm
	var err error
	s.db.View(func(tx *state.Tx) { out, err = tx.WithDevicesOn(v, host) })
	if err != nil {
		return nil, apierr.Precondition(state.RuleDevice, "vm:"+v.Name, "vm %s cannot power on: %v", v.Name, err)
	}
	return out, nil
}
