package manager

import (
	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// Devices: manager/vm assigns them (its Service serves the RPCs),
// state.DevicePool binds and judges them; the root wires the pools to
// placement and the sim's dirty rate to its RPC.

// deviceFit says why a host cannot give v its devices ("" when it can),
// for placement.
func (m *Manager) deviceFit(v *acliv1.Vm) func(host string) string {
	if len(v.Devices) == 0 {
		return nil
	}
	return func(host string) string {
		var err error
		m.db.View(func(tx *state.Tx) { _, err = tx.BindDevices(v, host) })
		if err != nil {
			return err.Error()
		}
		return ""
	}
}

// withDevicesOn returns v with a free device of each of its groups on host
// bound, or refuses naming the group host has none free of.
func (m *Manager) withDevicesOn(v *acliv1.Vm, host string) (*acliv1.Vm, error) {
	var out *acliv1.Vm
	var err error
	m.db.View(func(tx *state.Tx) { out, err = tx.WithDevicesOn(v, host) })
	if err != nil {
		return nil, apierr.Precondition(state.RuleDevice, "vm:"+v.Name, "vm %s cannot start there: %v", v.Name, err)
	}
	return out, nil
}
