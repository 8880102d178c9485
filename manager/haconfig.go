package manager

import (
	"context"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/ha"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/vmgroup"
)

// Cluster-wide HA and ADS settings (acli's ha.get/ha.update and
// ads.get/ads.update), kept in the cluster record. HA's guarantee is a rule
// at commit (state.RuleHAReservation); power-ons are also checked before
// they start, so a refused one never runs.

// GetHaConfig returns the HA settings in effect and the memory they reserve.
func (s clusterService) GetHaConfig(ctx context.Context, _ *acliv1.GetHaConfigRequest) (*acliv1.HaConfig, error) {
	var out *acliv1.HaConfig
	s.m.db.View(func(tx *state.Tx) {
		out = state.HA(tx.Cluster())
		if state.Guarantee(out) {
			mem := tx.HAMemory(nil, "")
			out.ReservedMemoryBytes, out.UnreservedMemoryBytes = mem.Reserved, max(mem.Free(), 0)
		}
	})
	return out, nil
}

// UpdateHaConfig changes the HA settings. Turning the guarantee on while
// the running VMs already take the memory it would reserve is refused at
// commit, naming the reservation.
func (s clusterService) UpdateHaConfig(ctx context.Context, req *acliv1.UpdateHaConfigRequest) (*acliv1.Task, error) {
	return s.m.editCluster(ctx, acliv1.TaskOperation_kHaUpdate, func(next *acliv1.Cluster) (string, error) {
		return ha.Update(next, req, s.m.numHosts())
	})
}

// GetAdsConfig returns the ADS settings.
func (s clusterService) GetAdsConfig(ctx context.Context, _ *acliv1.GetAdsConfigRequest) (*acliv1.AdsConfig, error) {
	s.m.mu.RLock()
	defer s.m.mu.RUnlock()
	return &acliv1.AdsConfig{Enabled: adsEnabled(s.m.clusterRecord())}, nil
}

// UpdateAdsConfig turns ADS on or off.
func (s clusterService) UpdateAdsConfig(ctx context.Context, req *acliv1.UpdateAdsConfigRequest) (*acliv1.Task, error) {
	return s.m.editCluster(ctx, acliv1.TaskOperation_kAdsUpdate, func(next *acliv1.Cluster) (string, error) {
		next.Ads = &acliv1.AdsConfig{Enabled: req.Enable}
		if req.Enable {
			return "ADS enabled", nil
		}
		return "ADS disabled: placement ignores VM-group anti-affinity", nil
	})
}

// editCluster commits a change of the cluster record as a quick task:
// edit changes a copy (under the lock) and returns the task's line.
func (m *Manager) editCluster(ctx context.Context, op acliv1.TaskOperation, edit func(next *acliv1.Cluster) (string, error)) (*acliv1.Task, error) {
	m.mu.Lock()
	var cur *acliv1.Cluster
	var rev int64
	m.db.View(func(tx *state.Tx) { cur, rev = tx.Cluster(), tx.Rev(clusterKey) })
	if t := m.busy[cur.Uuid]; t != nil {
		m.mu.Unlock()
		return nil, apierr.Busy("cluster", cur.Name, t.PB.Uuid, t.PB.Operation.String())
	}
	next := proto.Clone(cur).(*acliv1.Cluster)
	msg, err := edit(next)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	t := m.newTaskLocked(op, []*acliv1.EntityRef{clusterRef(cur)}, cur.Uuid)
	m.mu.Unlock()
	return m.quick(ctx, t, func(context.Context, *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: clusterKey, msg: next, rev: rev}},
			apply:   func(int64) {}, // the DB holds the record
			message: msg,
		}, nil
	})
}

// adsEnabled: ADS is on unless turned off.
func adsEnabled(c *acliv1.Cluster) bool { return c.GetAds() == nil || c.Ads.Enabled }

func clusterRef(c *acliv1.Cluster) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kCluster, Uuid: c.Uuid, Name: c.Name}
}

// haRefusal refuses, before it starts, a power-on on host that HA's
// guarantee would refuse at commit.
func (m *Manager) haRefusal(vm *acliv1.Vm, host string) error {
	var why string
	m.db.View(func(tx *state.Tx) { why = tx.HAShortfall(vm, host) })
	if why == "" {
		return nil
	}
	return apierr.Precondition(state.RuleHAReservation, "vm:"+vm.Name, "vm %s cannot power on: %s", vm.Name, why)
}

// antiAffinityLocked maps each VM to its anti-affinity groups while ADS,
// which enforces that should-rule, is on; off, placement ignores them.
func (m *Manager) antiAffinityLocked() map[string][]string {
	var groups map[string][]string
	m.db.View(func(tx *state.Tx) {
		if groups = map[string][]string{}; adsEnabled(tx.Cluster()) {
			groups = vmgroup.AntiAffinity(tx)
		}
	})
	return groups
}
