package ha

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
	"github.com/acli-dev/acli/manager/vmgroup"
)

// Settings serves the cluster-wide HA and ADS settings (acli's
// ha.get/ha.update and ads.get/ads.update), kept in the cluster record.
// HA's guarantee is a rule at commit (state.RuleHAReservation); power-ons
// are also checked before they start (PowerOnRefusal), so a refused one
// never runs.
type Settings struct {
	DB    *state.DB
	Tasks tasks.Starter
}

// GetHaConfig returns the HA settings in effect, the memory they reserve
// and, with failover on, the first host failure HA could not cover.
func (s *Settings) GetHaConfig(ctx context.Context, _ *acliv1.GetHaConfigRequest) (*acliv1.HaConfig, error) {
	var out *acliv1.HaConfig
	s.DB.View(func(tx *state.Tx) {
		out = state.HA(tx.Cluster())
		if !out.FailoverEnabled {
			return
		}
		mem := tx.HAMemory(nil, "")
		out.Unprotected = mem.Short
		if state.Guarantee(out) {
			out.ReservedMemoryBytes, out.UnreservedMemoryBytes = mem.Reserved, max(mem.Free(), 0)
		}
	})
	return out, nil
}

// UpdateHaConfig changes the HA settings. Turning the guarantee on while
// the running VMs already take the memory it would reserve is refused at
// commit, naming the reservation.
func (s *Settings) UpdateHaConfig(ctx context.Context, req *acliv1.UpdateHaConfigRequest) (*acliv1.Task, error) {
	return s.edit(ctx, acliv1.TaskOperation_kHaUpdate, func(tx *state.Tx, next *acliv1.Cluster) (string, error) {
		return Update(next, req, tx.NumHosts())
	})
}

// GetAdsConfig returns the ADS settings.
func (s *Settings) GetAdsConfig(ctx context.Context, _ *acliv1.GetAdsConfigRequest) (*acliv1.AdsConfig, error) {
	var on bool
	s.DB.View(func(tx *state.Tx) { on = ADSEnabled(tx.Cluster()) })
	return &acliv1.AdsConfig{Enabled: on}, nil
}

// UpdateAdsConfig turns ADS on or off.
func (s *Settings) UpdateAdsConfig(ctx context.Context, req *acliv1.UpdateAdsConfigRequest) (*acliv1.Task, error) {
	return s.edit(ctx, acliv1.TaskOperation_kAdsUpdate, func(_ *state.Tx, next *acliv1.Cluster) (string, error) {
		next.Ads = &acliv1.AdsConfig{Enabled: req.Enable}
		if req.Enable {
			return "ADS enabled", nil
		}
		return "ADS disabled: placement ignores VM-group anti-affinity", nil
	})
}

// edit commits a change of the cluster record as a task holding the
// cluster: edit changes a copy of the record as the task found it and
// returns the task's line.
func (s *Settings) edit(ctx context.Context, op acliv1.TaskOperation, edit func(tx *state.Tx, next *acliv1.Cluster) (string, error)) (*acliv1.Task, error) {
	var cur *acliv1.Cluster
	s.DB.View(func(tx *state.Tx) { cur = tx.Cluster() })
	if cur == nil {
		return nil, apierr.Internal("reading the cluster", errors.New("there is no cluster record"))
	}
	t, err := s.Tasks.Begin(ctx, "cluster", op, []*acliv1.EntityRef{clusterRef(cur)}, cur.Uuid)
	if err != nil {
		return nil, err
	}
	var next *acliv1.Cluster
	var rev int64
	var msg string
	s.DB.View(func(tx *state.Tx) {
		cur, rev = tx.Cluster(), tx.Rev(state.ClusterKey)
		next = proto.Clone(cur).(*acliv1.Cluster)
		msg, err = edit(tx, next)
	})
	if err != nil {
		t.Drop()
		return nil, err
	}
	return t.Commit(ctx, []state.Write{{Key: state.ClusterKey, Msg: next, Rev: rev}}, msg)
}

// ADSEnabled: ADS is on unless turned off.
func ADSEnabled(c *acliv1.Cluster) bool { return c.GetAds() == nil || c.Ads.Enabled }

// AntiAffinity maps each VM to its anti-affinity groups while ADS, which
// enforces that should-rule, is on; off, placement ignores them.
func AntiAffinity(tx *state.Tx) map[string][]string {
	if !ADSEnabled(tx.Cluster()) {
		return map[string][]string{}
	}
	return vmgroup.AntiAffinity(tx)
}

// PowerOnRefusal refuses, before it starts, a power-on of vm on host that
// HA's guarantee would refuse at commit.
func PowerOnRefusal(tx *state.Tx, vm *acliv1.Vm, host string) error {
	why := tx.HAShortfall(vm, host)
	if why == "" {
		return nil
	}
	return apierr.Precondition(state.RuleHAReservation, "vm:"+vm.Name, "vm %s cannot power on: %s", vm.Name, why)
}

// Refusal is PowerOnRefusal on the committed records.
func (s *Settings) Refusal(vm *acliv1.Vm, host string) (err error) {
	s.DB.View(func(tx *state.Tx) { err = PowerOnRefusal(tx, vm, host) })
	return err
}

// Snapshot is the committed cluster as the scheduler sees it, with the
// anti-affinity groups ADS enforces.
func (s *Settings) Snapshot() (snap *scheduler.Snapshot) {
	s.DB.View(func(tx *state.Tx) { snap = tx.Schedule(AntiAffinity(tx)) })
	return snap
}

// Groups is AntiAffinity on the committed records.
func (s *Settings) Groups() (groups map[string][]string) {
	s.DB.View(func(tx *state.Tx) { groups = AntiAffinity(tx) })
	return groups
}

func clusterRef(c *acliv1.Cluster) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kCluster, Uuid: c.Uuid, Name: c.Name}
}
