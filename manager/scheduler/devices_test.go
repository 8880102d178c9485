package scheduler

import (
	"errors"
	"strings"
	"testing"
)

// gpus gives host number h (1-based) n devices of group "g-m60", those
// of the VMs running there held.
func (s *Snapshot) gpus(h, n int) *Snapshot {
	host := s.host(h)
	host.Devices = func() DevicePool {
		p := &countPool{free: n}
		for _, v := range s.VMs {
			if v.Running() && v.Host == host.UUID {
				p.free -= len(v.Devices)
			}
		}
		return p
	}
	return s
}

// countPool is a DevicePool of one group's devices, counted.
type countPool struct{ free int }

func (p *countPool) Short(v *VM) string {
	if len(v.Devices) > p.free {
		return "no free GPU Nvidia_Tesla_M60"
	}
	return ""
}
func (p *countPool) Book(v *VM)    { p.free -= len(v.Devices) }
func (p *countPool) Release(v *VM) { p.free += len(v.Devices) }

// gpu makes a VM need one device of group "g-m60" per call.
func gpu(v *VM) {
	v.Passthrough = true
	v.Devices = append(v.Devices, Device{Group: "g-m60", Name: "GPU Nvidia_Tesla_M60"})
}

// HA restarts a GPU VM only where a GPU is free, whatever the memory
// elsewhere; the VMs running there hold theirs.
func TestHARestartPlacesByDevice(t *testing.T) {
	s := cluster(4, 64).gpus(1, 1).gpus(3, 1).gpus(4, 1).
		addVM("g1", 1, 8, 2, gpu).
		addVM("busy", 3, 40, 2, gpu). // holds h3's GPU
		addVM("fill", 4, 40, 2)
	p, err := PlanHARestart(s, []string{"host-1"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// h2 has the most free memory but no GPU, h3's is held: h4.
	if len(p.Restarts) != 1 || p.Restarts[0].Target.Name != "h4" {
		t.Fatalf("restarts %+v, not restarted %+v", p.Restarts, p.NotRestarted)
	}
	// A second GPU VM on the failed host finds no free GPU left.
	s = s.addVM("g2", 1, 4, 2, gpu)
	p, _ = PlanHARestart(s, []string{"host-1"}, Options{})
	if len(p.Restarts) != 1 || p.Restarts[0].VM.Name != "g1" || len(p.NotRestarted) != 1 ||
		!strings.Contains(p.NotRestarted[0].Reason, "h2 (127.20.0.22): no free GPU Nvidia_Tesla_M60") ||
		!strings.Contains(p.NotRestarted[0].Reason, "h4 (127.20.0.24): no free GPU Nvidia_Tesla_M60") {
		t.Fatalf("restarts %+v, not restarted %+v", p.Restarts, p.NotRestarted)
	}
}

// A VM that needs two devices of a group takes a host with two free.
func TestPlaceNeedsEveryDevice(t *testing.T) {
	s := cluster(3, 64).gpus(1, 1).gpus(2, 2)
	v := VM{UUID: "vm-two", Name: "two", MemoryBytes: 4 * gb, VCPUs: 2}
	gpu(&v)
	gpu(&v)
	p, err := Place(s, v, Options{})
	if err != nil || p.Host.Name != "h2" {
		t.Fatalf("placed on %v: %v", p.Host, err)
	}
	s.gpus(2, 1)
	_, err = Place(s, v, Options{})
	var ne *NoEligibleHostError
	if !errors.As(err, &ne) || len(ne.Rejections) != 3 || ne.Rejections[1].Reasons[0] != "no free GPU Nvidia_Tesla_M60" {
		t.Fatalf("err %v", err)
	}
}

// Anti-affinity is a should-rule; a free device is a must: the GPU VM
// joins its group's member on the one host with a free GPU.
func TestAntiAffinityYieldsToDevices(t *testing.T) {
	s := cluster(3, 64).gpus(2, 2).addVM("a", 2, 4, 2, groups("web"), gpu)
	v := VM{UUID: "vm-b", Name: "b", MemoryBytes: 4 * gb, VCPUs: 2, AntiAffinityGroups: []string{"web"}}
	gpu(&v)
	p, err := Place(s, v, Options{})
	if err != nil || p.Host.Name != "h2" || len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "anti-affinity not honoured") {
		t.Fatalf("placed on %v %v: %v", p.Host, p.Notes, err)
	}
}

// An offline move of a GPU VM goes to a host with a free GPU; naming one
// without is refused; the move frees the source's.
func TestOfflineMoveByDevice(t *testing.T) {
	s := cluster(3, 64).gpus(1, 1).gpus(3, 1).addVM("g", 1, 4, 2, gpu)
	p, err := PickMigrationTarget(s, "vm-g", "", Options{})
	if err != nil || p.Host.Name != "h3" {
		t.Fatalf("target %v: %v", p.Host, err)
	}
	if err := CheckTarget(s, "vm-g", "host-2", Options{}); err == nil || err.Error() != "cannot move vm g to h2 (127.20.0.22): no free GPU Nvidia_Tesla_M60" {
		t.Fatalf("check h2: %v", err)
	}
	if err := CheckTarget(s, "vm-g", "host-3", Options{}); err != nil {
		t.Fatal(err)
	}
}

// Cold maintenance moves a GPU VM (offline) to a host with a free GPU and
// blocks on one that has none; live maintenance blocks on both.
func TestColdEvacuationMovesDevices(t *testing.T) {
	s := cluster(3, 64).gpus(1, 2).gpus(3, 1).addVM("g1", 1, 8, 2, gpu).addVM("g2", 1, 4, 2, gpu)
	live := mustPlan(t, s, "host-1", Block)
	if len(live.Blockers) != 2 {
		t.Fatalf("live blockers %v", live.Blockers)
	}
	// Each blocker names what lifts it: cold maintenance only for g1, the
	// VM the cold plan moves (h3's one GPU).
	for i, want := range []string{
		"vm g1 has a passthrough device and cannot live-migrate (use mode=cold, non_migratable_vm_action=acpi_shutdown or mode=power_off)",
		"vm g2 has a passthrough device and cannot live-migrate (use non_migratable_vm_action=acpi_shutdown or mode=power_off)",
	} {
		if got := live.Blockers[i].String(); got != want {
			t.Errorf("live blocker %d = %q, want %q", i, got, want)
		}
	}
	cold, err := PlanEvacuation(s, "host-1", Block, Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if st := stepFor(cold, "g1"); st.Action != ActionMigrate || st.Target.Name != "h3" {
		t.Fatalf("g1: %+v", st)
	}
	if st := stepFor(cold, "g2"); st.Action != ActionBlocked || !strings.Contains(st.Reason, "no free GPU Nvidia_Tesla_M60") ||
		len(cold.Blockers) != 1 || cold.Blockers[0].VM.Name != "g2" {
		t.Fatalf("g2: %+v, blockers %v", st, cold.Blockers)
	}
}
