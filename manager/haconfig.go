package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
)

// Cluster-wide HA and ADS settings (acli's ha.get/ha.update and
// ads.get/ads.update), kept in the cluster record. HA's guarantee is a rule
// at commit (state.RuleHAReservation); power-ons are also checked before
// they start, so a refused one never runs.

// errFailoverDisabled stops a down host's restart while HA is off.
var errFailoverDisabled = errors.New("HA failover is disabled (ha.update enable_failover=true turns it on)")

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
	if req.EnableFailover == nil && req.NumHostFailuresToTolerate == nil && req.ReservationType == 0 {
		return nil, apierr.BadField("ha", "nothing to update: give at least one of enable_failover, num_host_failures_to_tolerate, reservation_type")
	}
	return s.m.editCluster(ctx, acliv1.TaskOperation_kHaUpdate, func(next *acliv1.Cluster) (string, error) {
		next.Ha = state.HA(next)
		var changed []string
		if req.EnableFailover != nil {
			next.Ha.FailoverEnabled = *req.EnableFailover
			changed = append(changed, fmt.Sprintf("enable_failover=%v", *req.EnableFailover))
		}
		if n := req.NumHostFailuresToTolerate; n != nil {
			if hosts := len(s.m.hostList); *n < 1 || int(*n) >= hosts {
				return "", apierr.BadField("num_host_failures_to_tolerate", "num_host_failures_to_tolerate %d is out of range; use 1 to %d (one less than the %d hosts)", *n, hosts-1, hosts)
			}
			next.Ha.NumHostFailuresToTolerate = *n
			changed = append(changed, fmt.Sprintf("num_host_failures_to_tolerate=%d", *n))
		}
		if rt := req.ReservationType; rt != 0 {
			if _, ok := acliv1.HaReservationType_name[int32(rt)]; !ok {
				return "", apierr.BadField("reservation_type", "reservation_type %d is unknown; use kAcropolisHAReserveSegments or kAcropolisHANoReservations", rt)
			}
			next.Ha.ReservationType = rt
			changed = append(changed, "reservation_type="+rt.String())
		}
		return "HA updated: " + strings.Join(changed, ", "), nil
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
	if !adsEnabled(m.clusterRecord()) {
		return map[string][]string{}
	}
	return m.ops.groups.AntiAffinity()
}

// failoverEnabled: HA restarts the VMs of failed hosts unless turned off.
func failoverEnabled(c *acliv1.Cluster) bool { return state.HA(c).FailoverEnabled }
