package rulestest

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

const gib = int64(1) << 30

var (
	normal  = hostView{name: "h1", state: acliv1.NodeState_AcropolisNormal, cvm: acliv1.CvmState_kCvmUp, schedulable: true, memory: 16 * gib}
	entered = hostView{name: "h1", state: acliv1.NodeState_EnteredMaintenanceMode, cvm: acliv1.CvmState_kCvmUp, memory: 16 * gib}
)

func named(h hostView, name string) hostView { h.name = name; return h }

// snap builds a read in which every host is quiet, taken at the checker's
// current epochs.
func snap(c *Checker, hosts map[string]hostView, vms map[string]vmView) *snapshot {
	s := &snapshot{began: time.Now(), at: time.Now(), hosts: hosts, vms: vms, known: map[string]bool{},
		epoch: map[string]int{}, quiet: map[string]bool{}}
	for id, h := range hosts {
		s.known[id] = true
		s.quiet[h.name] = true
		s.epoch[h.name] = c.epoch[h.name]
	}
	return s
}

func TestCheckerState(t *testing.T) {
	off := vmView{name: "v1", host: "H1", memory: gib}
	on := vmView{name: "v1", host: "H1", on: true, memory: gib}
	for _, tt := range []struct {
		name       string
		prev, cur  func(c *Checker) *snapshot
		between    func(c *Checker) // what the operator did between the reads
		rule       string           // "" = no violation
		placements int
	}{
		{name: "a VM placed on a host in maintenance",
			prev: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": entered}, map[string]vmView{"V1": off})
			},
			cur: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": entered}, map[string]vmView{"V1": on})
			},
			placements: 1},
		{name: "the operator acted on the host between the reads",
			prev: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": entered}, map[string]vmView{"V1": off})
			},
			between: func(c *Checker) { c.HostOp("h1", OpExitMaintenance)(true, false) },
			cur: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": entered}, map[string]vmView{"V1": on})
			}},
		{name: "a VM placed on a host in service",
			prev: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": normal}, map[string]vmView{"V1": off})
			},
			cur: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": normal}, map[string]vmView{"V1": on})
			}},
		{name: "a VM stays on a host that entered maintenance",
			prev: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": entered}, map[string]vmView{"V1": on})
			},
			cur: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": entered}, map[string]vmView{"V1": on})
			},
			rule: RulePlacement},
		{name: "memory over-committed",
			cur: func(c *Checker) *snapshot {
				big := on
				big.memory = 17 * gib
				return snap(c, map[string]hostView{"H1": normal}, map[string]vmView{"V1": big})
			},
			rule: RuleNoOvercommit},
		{name: "a container fuller than its size",
			cur: func(c *Checker) *snapshot {
				s := snap(c, map[string]hostView{"H1": normal}, nil)
				s.containers = map[string]containerView{"default-container": {capacity: 10 * gib, used: 11 * gib}}
				return s
			},
			rule: RuleCapacity},
		{name: "VMs' vDisks over a container that counts less",
			cur: func(c *Checker) *snapshot {
				disks := off
				disks.disks = map[string]int64{"default-container": 11 * gib}
				s := snap(c, map[string]hostView{"H1": normal}, map[string]vmView{"V1": disks})
				s.containers = map[string]containerView{"default-container": {capacity: 10 * gib, used: 5 * gib}}
				return s
			},
			rule: RuleCapacity},
		{name: "a full container",
			cur: func(c *Checker) *snapshot {
				disks := off
				disks.disks = map[string]int64{"default-container": 10 * gib}
				s := snap(c, map[string]hostView{"H1": normal}, map[string]vmView{"V1": disks})
				s.containers = map[string]containerView{"default-container": {capacity: 10 * gib, used: 10 * gib}}
				return s
			}},
		{name: "a running VM on no host",
			cur: func(c *Checker) *snapshot {
				lost := on
				lost.host = ""
				return snap(c, map[string]hostView{"H1": normal}, map[string]vmView{"V1": lost})
			},
			rule: RuleOneHost},
		{name: "two hosts in maintenance on RF2",
			cur: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": entered, "H2": named(entered, "h2"), "H3": named(normal, "h3")}, nil)
			},
			rule: RuleRFBudget},
		{name: "a host taken out while another is down",
			prev: func(c *Checker) *snapshot {
				down := named(normal, "h2")
				down.state = acliv1.NodeState_kNodeDown
				return snap(c, map[string]hostView{"H1": normal, "H2": down}, nil)
			},
			between: func(c *Checker) { c.HostOp("h1", OpEnterMaintenance)(true, false) },
			cur: func(c *Checker) *snapshot {
				down := named(normal, "h2")
				down.state = acliv1.NodeState_kNodeDown
				return snap(c, map[string]hostView{"H1": entered, "H2": down}, nil)
			},
			rule: RuleRFBudget},
		{name: "maintenance lost",
			between: func(c *Checker) { c.HostOp("h1", OpEnterMaintenance)(true, false) },
			cur: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": normal}, nil)
			},
			rule: RuleIntent},
		{name: "maintenance ended by the operator",
			between: func(c *Checker) {
				c.HostOp("h1", OpEnterMaintenance)(true, false)
				c.HostOp("h1", OpExitMaintenance)(true, false)
			},
			cur: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": normal}, nil)
			}},
		{name: "maintenance ended by an operator overlapping its start",
			between: func(c *Checker) {
				enter := c.HostOp("h1", OpEnterMaintenance)
				exit := c.HostOp("h1", OpExitMaintenance)
				enter(true, false)
				exit(true, false)
			},
			cur: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": normal}, nil)
			}},
		{name: "a refused cordon",
			between: func(c *Checker) { c.HostOp("h1", OpCordon)(false, true) },
			cur: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": normal}, nil)
			}},
		{name: "a dead host in service",
			between: func(c *Checker) {
				c.Fault("h1", true)
				c.failedAt["h1"] = time.Now().Add(-2 * DeadHostGrace)
			},
			cur: func(c *Checker) *snapshot {
				return snap(c, map[string]hostView{"H1": normal}, nil)
			},
			rule: RuleDeadHost},
		{name: "a healthy host recorded down",
			between: func(c *Checker) { c.healthyAt = time.Now().Add(-2 * RecoverGrace) },
			cur: func(c *Checker) *snapshot {
				down := normal
				down.state = acliv1.NodeState_kNodeDown
				return snap(c, map[string]hostView{"H1": down}, nil)
			},
			rule: RuleDeadHost},
		{name: "a host failed before a manager restart, still down",
			between: func(c *Checker) {
				c.Fault("h1", true)
				c.Restarted()
				c.healthyAt = time.Now().Add(-2 * RecoverGrace)
			},
			cur: func(c *Checker) *snapshot {
				down := normal
				down.state = acliv1.NodeState_kNodeDown
				return snap(c, map[string]hostView{"H1": down}, nil)
			}},
		{name: "a host recorded down soon after it recovered",
			between: func(c *Checker) {
				c.healthyAt = time.Now().Add(-2 * RecoverGrace)
				c.Fault("h1", true)
				c.Fault("h1", false)
			},
			cur: func(c *Checker) *snapshot {
				down := normal
				down.state = acliv1.NodeState_kNodeDown
				return snap(c, map[string]hostView{"H1": down}, nil)
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := NewChecker(2)
			var prev *snapshot
			if tt.prev != nil {
				prev = tt.prev(c)
			}
			if tt.between != nil {
				tt.between(c)
			}
			cands := c.checkState(tt.cur(c), prev)
			got, ex := c.Violations()
			for _, rule := range Rules {
				want := 0
				if rule == tt.rule {
					want = 1
				}
				if got[rule] != want {
					t.Errorf("%s: %d violations, want %d (%v)", rule, got[rule], want, ex[rule])
				}
			}
			if len(cands) != tt.placements {
				t.Errorf("%d placements to look up, want %d", len(cands), tt.placements)
			}
		})
	}
}

func TestCheckerEventsAndTasks(t *testing.T) {
	c := NewChecker(2)
	for _, seq := range []uint64{1, 2, 3, 2, 3, 4} {
		c.Event(&acliv1.Event{Seq: seq})
	}
	at := func(s int) *timestamppb.Timestamp { return timestamppb.New(time.Unix(1000+int64(s), 0)) }
	vm := []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kVm, Uuid: "V1", Name: "v1"}}
	other := []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kVm, Uuid: "V2", Name: "v2"}}
	c.checkConflicts([]*acliv1.Task{
		{Uuid: "a", Operation: acliv1.TaskOperation_kVmPowerOn, Entities: vm, StartTime: at(0), CompleteTime: at(5)},
		{Uuid: "b", Operation: acliv1.TaskOperation_kVmMigrate, Entities: vm, StartTime: at(5), CompleteTime: at(9)},
		{Uuid: "c", Operation: acliv1.TaskOperation_kVmPowerOff, Entities: vm, StartTime: at(8), CompleteTime: at(10)},
		{Uuid: "d", Operation: acliv1.TaskOperation_kVmPowerOff, Entities: other, StartTime: at(8), CompleteTime: at(10)},
		{Uuid: "e", Operation: acliv1.TaskOperation_kHostEnterMaintenanceMode, Entities: vm, StartTime: at(0), CompleteTime: at(10)},
	})
	got, ex := c.Violations()
	if got[RuleEvents] != 1 || got[RuleConflict] != 1 {
		t.Errorf("events %d, conflicts %d; want 1 and 1: %v", got[RuleEvents], got[RuleConflict], ex)
	}
}
