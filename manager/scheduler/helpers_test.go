package scheduler

import (
	"fmt"
	"testing"
)

const gb = int64(1) << 30

// cluster builds n AcropolisNormal hosts h1..hn (127.20.0.21...) with 32 cores
// and memGB GiB each.
func cluster(n int, memGB int64) *Snapshot {
	s := &Snapshot{}
	for i := 1; i <= n; i++ {
		s.Hosts = append(s.Hosts, Host{
			UUID: fmt.Sprintf("host-%d", i), Name: fmt.Sprintf("h%d", i),
			IP:    fmt.Sprintf("127.20.%d.%d", (20+i)/250, (20+i)%250),
			Cores: 32, MemoryBytes: memGB * gb, Schedulable: true,
		})
	}
	return s
}

// addVM puts a running VM on host number h (1-based) and recounts usage.
func (s *Snapshot) addVM(name string, h int, memGB int64, vcpus int, mods ...func(*VM)) *Snapshot {
	v := VM{UUID: "vm-" + name, Name: name, VCPUs: vcpus, MemoryBytes: memGB * gb, Power: PowerOn,
		Host: fmt.Sprintf("host-%d", h)}
	for _, m := range mods {
		m(&v)
	}
	s.VMs = append(s.VMs, v)
	s.Recount()
	return s
}

func (s *Snapshot) host(n int) *Host { return &s.Hosts[n-1] }

func affinity(hosts ...int) func(*VM) {
	return func(v *VM) {
		for _, h := range hosts {
			v.HostAffinity = append(v.HostAffinity, fmt.Sprintf("host-%d", h))
		}
	}
}

func groups(g ...string) func(*VM) { return func(v *VM) { v.AntiAffinityGroups = g } }

func agent(v *VM)       { v.Agent = true }
func passthrough(v *VM) { v.Passthrough = true }
func off(v *VM)         { v.Power = PowerOff }
func priority(p int) func(*VM) {
	return func(v *VM) { v.HAPriority = p }
}

func mustPlan(t *testing.T, s *Snapshot, host string, a NonMigratableAction) *Plan {
	t.Helper()
	p, err := PlanEvacuation(s, host, a, Options{})
	if err != nil {
		t.Fatalf("PlanEvacuation: %v", err)
	}
	return p
}

func stepFor(p *Plan, vm string) Step {
	for _, s := range p.Steps {
		if s.VM.Name == vm {
			return s
		}
	}
	return Step{Action: -1}
}
