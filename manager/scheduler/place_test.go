package scheduler

import (
	"errors"
	"strings"
	"testing"
)

func TestPlacePrefersMostFreeMemory(t *testing.T) {
	s := cluster(3, 64).addVM("a", 1, 16, 2).addVM("b", 2, 8, 2)
	p, err := Place(s, VM{UUID: "new", Name: "new", VCPUs: 2, MemoryBytes: 4 * gb}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Host.Name != "h3" {
		t.Fatalf("placed on %s, want h3 (most free memory)", p.Host)
	}
}

func TestPlaceTieBreaksOnVMCountThenIP(t *testing.T) {
	// h1 and h2 have equal free memory; h1 has two VMs, h2 one: fewest VMs wins.
	s := cluster(3, 64).addVM("a", 1, 4, 1).addVM("b", 1, 4, 1).addVM("c", 2, 8, 1)
	s.host(3).MemoryUsedBytes = 60 * gb // h3 nearly full by an outside reservation
	p, err := Place(s, VM{UUID: "n", Name: "n", VCPUs: 1, MemoryBytes: gb}, Options{})
	if err != nil || p.Host.Name != "h2" {
		t.Fatalf("got %v %v, want h2", p.Host, err)
	}
	// All equal: lowest IP, numerically (127.20.0.9 < 127.20.0.21).
	s = cluster(2, 64)
	s.host(2).IP = "127.20.0.9"
	p, err = Place(s, VM{UUID: "n", Name: "n", VCPUs: 1, MemoryBytes: gb}, Options{})
	if err != nil || p.Host.Name != "h2" {
		t.Fatalf("got %v %v, want h2 (lower IP)", p.Host, err)
	}
}

func TestPlaceHonoursHostAffinityEvenWhenFuller(t *testing.T) {
	s := cluster(3, 64).addVM("a", 2, 40, 2)
	p, err := Place(s, VM{UUID: "n", Name: "n", VCPUs: 1, MemoryBytes: gb, HostAffinity: []string{"host-2"}}, Options{})
	if err != nil || p.Host.Name != "h2" {
		t.Fatalf("got %v %v, want h2", p.Host, err)
	}
}

func TestPlaceAvoidsAntiAffinityWhenPossible(t *testing.T) {
	s := cluster(2, 64).addVM("db1", 2, 1, 1, groups("db"))
	s.addVM("big", 1, 32, 1) // h1 has less free memory but no group member
	p, err := Place(s, VM{UUID: "n", Name: "db2", VCPUs: 1, MemoryBytes: gb, AntiAffinityGroups: []string{"db"}}, Options{})
	if err != nil || p.Host.Name != "h1" || len(p.Notes) != 0 {
		t.Fatalf("got %v %v %v, want h1 without notes", p.Host, p.Notes, err)
	}
	// With only h2 possible, the should-rule yields and says so.
	s.host(1).Schedulable = false
	p, err = Place(s, VM{UUID: "n", Name: "db2", VCPUs: 1, MemoryBytes: gb, AntiAffinityGroups: []string{"db"}}, Options{})
	if err != nil || p.Host.Name != "h2" || len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "anti-affinity") {
		t.Fatalf("got %v %v %v, want h2 with an anti-affinity note", p.Host, p.Notes, err)
	}
}

func TestPlaceAvoidsCPUHotHosts(t *testing.T) {
	// h1 has the most free memory but 28/32 vCPUs: adding 2 gives 0.94 > 0.85.
	s := cluster(2, 64).addVM("busy", 1, 1, 28).addVM("fat", 2, 30, 2)
	vm := VM{UUID: "n", Name: "n", VCPUs: 2, MemoryBytes: gb}
	p, err := Place(s, vm, Options{})
	if err != nil || p.Host.Name != "h2" {
		t.Fatalf("got %v %v, want h2", p.Host, err)
	}
	// A looser limit (over-subscription allowed) lets memory decide again.
	p, err = Place(s, vm, Options{CPURatioLimit: 4})
	if err != nil || p.Host.Name != "h1" {
		t.Fatalf("got %v %v, want h1 with CPURatioLimit 4", p.Host, err)
	}
	// Soft only: when every host is hot, the VM still lands, with a note.
	s.addVM("busy2", 2, 1, 30)
	p, err = Place(s, vm, Options{})
	if err != nil || len(p.Notes) == 0 || !strings.Contains(p.Notes[0], "vCPU ratio") {
		t.Fatalf("got %v %v %v, want a placement with a vCPU note", p.Host, p.Notes, err)
	}
}

func TestPlaceNoEligibleHostListsEveryHost(t *testing.T) {
	s := cluster(4, 16).addVM("a", 4, 12, 1)
	s.host(1).Schedulable = false
	s.host(1).UnschedulableReason = "firmware upgrade"
	s.host(2).State = NodeInMaintenance
	s.host(3).State = NodeDown
	_, err := Place(s, VM{UUID: "n", Name: "web01", VCPUs: 1, MemoryBytes: 8 * gb}, Options{})
	var ne *NoEligibleHostError
	if !errors.As(err, &ne) {
		t.Fatalf("err = %v, want NoEligibleHostError", err)
	}
	if len(ne.Rejections) != 4 {
		t.Fatalf("rejections = %v, want all 4 hosts", ne.Rejections)
	}
	want := []string{
		"h1 (127.20.0.21): not schedulable (firmware upgrade)",
		"h2 (127.20.0.22): EnteredMaintenanceMode",
		"h3 (127.20.0.23): kNodeDown",
		"h4 (127.20.0.24): insufficient memory (needs 8 GiB, 4 GiB free)",
	}
	for i, w := range want {
		if got := ne.Rejections[i].String(); got != w {
			t.Errorf("rejection %d = %q, want %q", i, got, w)
		}
	}
	if !strings.HasPrefix(err.Error(), "no eligible host for vm web01: h1 (127.20.0.21)") || strings.Contains(err.Error(), "\n") {
		t.Errorf("message %q: want one line naming the VM and hosts", err)
	}
}

func TestPlaceRefusesRunningVM(t *testing.T) {
	s := cluster(2, 64).addVM("a", 1, 1, 1)
	if _, err := Place(s, s.VMs[0], Options{}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("err = %v", err)
	}
}

func TestPickMigrationTargetNeverAnswersCurrentHost(t *testing.T) {
	// h1 is by far the emptiest host, and the VM is on it: it must still move.
	s := cluster(3, 64).addVM("web", 1, 1, 1).addVM("x", 2, 30, 1).addVM("y", 3, 20, 1)
	p, err := PickMigrationTarget(s, "vm-web", "", Options{})
	if err != nil || p.Host.Name != "h3" {
		t.Fatalf("got %v %v, want h3", p.Host, err)
	}
	p, err = PickMigrationTarget(s, "vm-web", "host-3", Options{})
	if err != nil || p.Host.Name != "h2" {
		t.Fatalf("with host-3 excluded got %v %v, want h2", p.Host, err)
	}
	// Affinity to its own host only: no eligible host, and the reason says so.
	s = cluster(2, 64).addVM("db", 1, 1, 1, affinity(1))
	_, err = PickMigrationTarget(s, "vm-db", "", Options{})
	if err == nil || !strings.Contains(err.Error(), "h1 (127.20.0.21): current host") ||
		!strings.Contains(err.Error(), "h2 (127.20.0.22): not in the VM's host affinity") {
		t.Fatalf("err = %v", err)
	}
}

func TestPickMigrationTargetRefusals(t *testing.T) {
	s := cluster(2, 64).addVM("agent", 1, 1, 1, agent).addVM("stopped", 1, 1, 1, off)
	if _, err := PickMigrationTarget(s, "vm-agent", "", Options{}); err == nil || !strings.Contains(err.Error(), "agent VM") {
		t.Errorf("agent: err = %v", err)
	}
	if _, err := PickMigrationTarget(s, "vm-stopped", "", Options{}); err == nil || !strings.Contains(err.Error(), "is off") {
		t.Errorf("off: err = %v", err)
	}
	if _, err := PickMigrationTarget(s, "vm-nope", "", Options{}); err == nil {
		t.Errorf("unknown VM: no error")
	}
}

func TestCheckTarget(t *testing.T) {
	s := cluster(3, 16).addVM("web", 1, 8, 1).addVM("fill", 2, 12, 1)
	if err := CheckTarget(s, "vm-web", "host-3", Options{}); err != nil {
		t.Fatalf("h3: %v", err)
	}
	err := CheckTarget(s, "vm-web", "host-2", Options{})
	if err == nil || err.Error() != "cannot move vm web to h2 (127.20.0.22): insufficient memory (needs 8 GiB, 4 GiB free)" {
		t.Fatalf("h2: %v", err)
	}
	if err := CheckTarget(s, "vm-web", "host-1", Options{}); err == nil || !strings.Contains(err.Error(), "already on h1") {
		t.Fatalf("h1: %v", err)
	}
}

func TestCanLiveMigrate(t *testing.T) {
	for _, tc := range []struct {
		vm   VM
		want string
	}{
		{VM{Name: "a", Power: PowerOn}, ""},
		{VM{Name: "a", Power: PowerPaused}, ""},
		{VM{Name: "a", Power: PowerOff}, "is off"},
		{VM{Name: "a", Power: PowerOn, Agent: true}, "agent VM"},
		{VM{Name: "a", Power: PowerOn, Passthrough: true}, "passthrough"},
	} {
		err := CanLiveMigrate(&tc.vm)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: err = %v, want %q", tc.vm, err, tc.want)
		}
	}
}

func TestSnapshotErrors(t *testing.T) {
	s := cluster(2, 64)
	s.Hosts[1].UUID = s.Hosts[0].UUID
	if _, err := Place(s, VM{UUID: "n"}, Options{}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate host: %v", err)
	}
	s = cluster(2, 64)
	s.VMs = []VM{{UUID: "v", Name: "v", Power: PowerOn, Host: "ghost"}}
	if _, err := Place(s, VM{UUID: "n"}, Options{}); err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("VM on unknown host: %v", err)
	}
}

func TestInputOrderDoesNotMatter(t *testing.T) {
	s := cluster(6, 64)
	for i := 0; i < 30; i++ {
		s.addVM(string(rune('a'+i%26))+string(rune('a'+i/26)), 1+i%6, int64(1+i%5), 1+i%3, groups([]string{"g1", "g2", "g3"}[i%3]))
	}
	p1 := mustPlan(t, s, "host-1", Block)
	r := &Snapshot{}
	for i := len(s.Hosts) - 1; i >= 0; i-- {
		r.Hosts = append(r.Hosts, s.Hosts[i])
	}
	for i := len(s.VMs) - 1; i >= 0; i-- {
		r.VMs = append(r.VMs, s.VMs[i])
	}
	p2 := mustPlan(t, r, "host-1", Block)
	if len(p1.Steps) != len(p2.Steps) {
		t.Fatalf("plans differ in length")
	}
	for i := range p1.Steps {
		if p1.Steps[i].VM != p2.Steps[i].VM || p1.Steps[i].Target != p2.Steps[i].Target {
			t.Fatalf("step %d: %+v vs %+v", i, p1.Steps[i], p2.Steps[i])
		}
	}
}
