package manager

import (
	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/ha"
	"github.com/acli-dev/acli/manager/state"
)

// The HA and ADS settings are manager/ha's (ha.Settings); placement asks
// it about ADS and the HA guarantee here.

// clusterFeature serves the cluster service: the record from here, the
// HA and ADS settings from manager/ha.
type clusterFeature struct {
	clusterService
	*ha.Settings
}

// haRefusal refuses, before it starts, a power-on on host that HA's
// guarantee would refuse at commit.
func (m *Manager) haRefusal(vm *acliv1.Vm, host string) (err error) {
	m.db.View(func(tx *state.Tx) { err = ha.PowerOnRefusal(tx, vm, host) })
	return err
}

// antiAffinityLocked maps each VM to its anti-affinity groups while ADS is
// on (ha.AntiAffinity).
func (m *Manager) antiAffinityLocked() (groups map[string][]string) {
	m.db.View(func(tx *state.Tx) { groups = ha.AntiAffinity(tx) })
	return groups
}
