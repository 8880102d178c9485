package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// randomCluster builds a consistent random cluster: hosts in every state,
// VMs of every kind, never over-committed.
func randomCluster(r *rand.Rand) *Snapshot {
	n := 2 + r.IntN(10)
	s := cluster(n, 0)
	for i := range s.Hosts {
		h := &s.Hosts[i]
		h.MemoryBytes = int64(16+r.IntN(48)) * gb
		h.Cores = 8 + r.IntN(32)
		h.Schedulable = r.IntN(8) != 0
		h.State = []NodeState{NodeNormal, NodeNormal, NodeNormal, NodeNormal, NodeEnteringMaintenance, NodeInMaintenance, NodeDown}[r.IntN(7)]
		h.CVM = []CVMState{CVMUp, CVMUp, CVMUp, CVMDown, CVMMaintenance}[r.IntN(5)]
	}
	free := make([]int64, n)
	for i := range free {
		free[i] = s.Hosts[i].MemoryBytes
	}
	for i := 0; i < r.IntN(8*n); i++ {
		hi := r.IntN(n)
		mem := int64(1+r.IntN(8)) * gb / int64(1+r.IntN(2))
		v := VM{UUID: fmt.Sprintf("vm-%d", i), Name: fmt.Sprintf("v%03d", i), VCPUs: 1 + r.IntN(8), MemoryBytes: mem,
			Power: PowerOn, Host: s.Hosts[hi].UUID, HAPriority: r.IntN(5) - 1,
			Agent: r.IntN(20) == 0, Passthrough: r.IntN(20) == 0}
		if r.IntN(6) == 0 {
			v.Power = PowerOff
		} else if mem > free[hi] {
			continue
		} else {
			free[hi] -= mem
		}
		if r.IntN(5) == 0 {
			for k := 0; k <= r.IntN(3); k++ {
				v.HostAffinity = append(v.HostAffinity, s.Hosts[r.IntN(n)].UUID)
			}
		}
		if r.IntN(3) == 0 {
			v.AntiAffinityGroups = []string{fmt.Sprintf("g%d", r.IntN(4))}
		}
		s.VMs = append(s.VMs, v)
	}
	s.Recount()
	return s
}

// applyAndCheck moves every planned VM in a copy of s and checks the rules
// each target must satisfy.
func applyAndCheck(t *testing.T, s *Snapshot, steps []Step, forbidden map[string]bool) {
	t.Helper()
	hosts := map[string]*Host{}
	for i := range s.Hosts {
		h := s.Hosts[i]
		hosts[h.UUID] = &h
	}
	vms := map[string]*VM{}
	for i := range s.VMs {
		vms[s.VMs[i].UUID] = &s.VMs[i]
	}
	for _, st := range steps {
		if st.Action != ActionMigrate && st.Action != ActionRestart {
			continue
		}
		v, h := vms[st.VM.UUID], hosts[st.Target.UUID]
		switch {
		case h == nil:
			t.Fatalf("%s: unknown target %v", v.Name, st.Target)
		case forbidden[h.UUID] || h.UUID == v.Host:
			t.Fatalf("%s: targets its source or a failed host %s", v.Name, h.Name)
		case h.State != NodeNormal || !h.Schedulable:
			t.Fatalf("%s: targets %s in state %v schedulable=%v", v.Name, h.Name, h.State, h.Schedulable)
		case len(v.HostAffinity) > 0 && !contains(v.HostAffinity, h.UUID):
			t.Fatalf("%s: targets %s outside its affinity %v", v.Name, h.Name, v.HostAffinity)
		case v.Agent:
			t.Fatalf("agent VM %s moved", v.Name)
		}
		h.MemoryUsedBytes += v.MemoryBytes
		if h.MemoryUsedBytes > h.MemoryBytes {
			t.Fatalf("%s over-committed: %d > %d", h.Name, h.MemoryUsedBytes, h.MemoryBytes)
		}
	}
}

func TestPropertyEvacuationPlans(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	counts := map[Action]int{}
	defer func() {
		// The generator must exercise every outcome, or the test proves little.
		for _, a := range []Action{ActionMigrate, ActionShutdown, ActionBlocked, ActionNone} {
			if counts[a] == 0 {
				t.Errorf("no %v step in 400 random plans", a)
			}
		}
	}()
	for iter := 0; iter < 400; iter++ {
		s := randomCluster(r)
		src := s.Hosts[r.IntN(len(s.Hosts))].UUID
		action := NonMigratableAction(r.IntN(2))
		p := mustPlan(t, s, src, action)
		applyAndCheck(t, s, p.Steps, map[string]bool{src: true})

		// Every VM of the source appears exactly once; nothing else does.
		seen := map[string]int{}
		for _, st := range p.Steps {
			seen[st.VM.UUID]++
			counts[st.Action]++
			if st.Action == ActionMigrate && !liveMigratable(s, st.VM.UUID) {
				t.Fatalf("plan migrates non-migratable %s", st.VM)
			}
		}
		for _, v := range s.VMs {
			want := 0
			if v.Host == src {
				want = 1
			}
			if seen[v.UUID] != want {
				t.Fatalf("iter %d: vm %s appears %d times, want %d", iter, v.Name, seen[v.UUID], want)
			}
		}
		if p.OK() != (len(p.Blockers) == 0) {
			t.Fatal("OK inconsistent")
		}
		if p2 := mustPlan(t, s, src, action); !reflect.DeepEqual(p, p2) {
			t.Fatalf("iter %d: plan not deterministic", iter)
		}
	}
}

// liveMigratable is the property test's independent idea of a live-migratable VM.
func liveMigratable(s *Snapshot, uuid string) bool {
	for _, v := range s.VMs {
		if v.UUID == uuid {
			return v.Running() && !v.Agent && !v.Passthrough
		}
	}
	return false
}

func TestPropertyHARestartPlans(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 400; iter++ {
		s := randomCluster(r)
		failed := map[string]bool{}
		var list []string
		for k := 0; k <= r.IntN(2); k++ {
			u := s.Hosts[r.IntN(len(s.Hosts))].UUID
			if !failed[u] {
				failed[u] = true
				list = append(list, u)
			}
		}
		p, err := PlanHARestart(s, list, Options{})
		if err != nil {
			t.Fatal(err)
		}
		applyAndCheck(t, s, p.Restarts, failed)
		prev := 1 << 30
		for _, st := range p.Restarts {
			v := s.VMs[indexOf(s, st.VM.UUID)]
			if v.HAPriority < 0 || v.HAPriority > prev {
				t.Fatalf("restart order breaks priority at %s (%d after %d)", v.Name, v.HAPriority, prev)
			}
			prev = v.HAPriority
		}
	}
}

func TestPropertyMigrationTargets(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for iter := 0; iter < 400; iter++ {
		s := randomCluster(r)
		if len(s.VMs) == 0 {
			continue
		}
		v := s.VMs[r.IntN(len(s.VMs))]
		p, err := PickMigrationTarget(s, v.UUID, "", Options{})
		if err != nil {
			continue
		}
		applyAndCheck(t, s, []Step{{VM: vmRefOf(&v), Action: ActionMigrate, Target: p.Host}}, nil)
		if CheckTarget(s, v.UUID, p.Host.UUID, Options{}) != nil {
			t.Fatalf("CheckTarget disagrees with PickMigrationTarget for %s -> %s", v.Name, p.Host)
		}
	}
}

func indexOf(s *Snapshot, uuid string) int {
	for i := range s.VMs {
		if s.VMs[i].UUID == uuid {
			return i
		}
	}
	return -1
}
