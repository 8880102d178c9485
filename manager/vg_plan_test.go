package manager

import (
	"fmt"
	"testing"

	"github.com/acli-dev/acli/manager/iscsi"
)

func TestPlanSessionsPolicy(t *testing.T) {
	cvms := []iscsi.CVM{
		{IP: "10.0.0.1", HostUUID: "h1", State: iscsi.CVMUp},
		{IP: "10.0.0.2", HostUUID: "h2", State: iscsi.CVMUp},
		{IP: "10.0.0.3", HostUUID: "h3", State: iscsi.CVMUp},
	}
	vm := iscsi.Key{Initiator: vmInitiator("v1"), VG: "g", Disk: 0}
	ext := iscsi.Key{Initiator: "iqn.2024-01.com.example:a", VG: "g", Disk: 0}
	gone := iscsi.Key{Initiator: "iqn.2024-01.com.example:gone", VG: "g", Disk: 0}
	always := func(string) bool { return true }

	// The VM migrated from h1 to h2: its session follows; a detached
	// initiator's session ends; the external one, back home, stays.
	next, moves := planSessions(cvms,
		[]iscsi.Attachment{{Key: vm, VMHost: "h2"}, {Key: ext}},
		[]iscsi.Session{{Key: vm, CVM: "10.0.0.1", Preferred: "10.0.0.1"}, {Key: ext, CVM: "10.0.0.3", Preferred: "10.0.0.3"}, {Key: gone, CVM: "10.0.0.2"}},
		always)
	if len(next) != 2 || len(moves) != 1 || moves[0] != (iscsi.Move{Key: vm, From: "10.0.0.1", To: "10.0.0.2"}) {
		t.Fatalf("migration: sessions %v moves %v", next, moves)
	}
	if next[0].Preferred != "10.0.0.2" {
		t.Fatalf("VM session prefers %s, want its new host's CVM", next[0].Preferred)
	}

	// Failback refused (delay not over): the session stays where failover
	// put it; allowed: it returns.
	away := []iscsi.Session{{Key: ext, CVM: "10.0.0.2", Preferred: "10.0.0.3"}}
	if _, moves := planSessions(cvms, []iscsi.Attachment{{Key: ext}}, away, func(string) bool { return false }); len(moves) != 0 {
		t.Fatalf("failback not allowed yet, but moves %v", moves)
	}
	if _, moves := planSessions(cvms, []iscsi.Attachment{{Key: ext}}, away, always); len(moves) != 1 || moves[0].To != "10.0.0.3" {
		t.Fatalf("failback moves %v", moves)
	}

	// The VM's local CVM down: its session, stranded or new, goes where
	// its own disks are redirected, not merely to the least-loaded CVM.
	h2Down := []iscsi.CVM{cvms[0], {IP: "10.0.0.2", HostUUID: "h2", State: iscsi.CVMDown}, cvms[2]}
	own, path := vmDiskCVM(h2Down, "h2", "v1")
	if path != "redirected" {
		t.Fatalf("own disks %s %s", own, path)
	}
	for _, cur := range [][]iscsi.Session{{{Key: vm, CVM: "10.0.0.2", Preferred: "10.0.0.2"}}, nil} {
		// Load the CVM the VM's disks are redirected to, so least-loaded
		// would choose another.
		var load []iscsi.Session
		var atts []iscsi.Attachment
		for i := range 3 {
			k := iscsi.Key{Initiator: "iqn.2024-01.com.example:b", VG: "g", Disk: i}
			load = append(load, iscsi.Session{Key: k, CVM: own, Preferred: own})
			atts = append(atts, iscsi.Attachment{Key: k})
		}
		atts = append(atts, iscsi.Attachment{Key: vm, VMHost: "h2"})
		next, moves := planSessions(h2Down, atts, append(load, cur...), always)
		for _, s := range next {
			if s.Key == vm && (s.CVM != own || s.Preferred != "10.0.0.2") {
				t.Fatalf("vm session %v, want it on %s (own disks) preferring 10.0.0.2", s, own)
			}
		}
		if len(cur) == 1 && (len(moves) != 1 || moves[0] != (iscsi.Move{Key: vm, From: "10.0.0.2", To: own})) {
			t.Fatalf("moves %v", moves)
		} else if len(cur) == 0 && len(moves) != 0 {
			t.Fatalf("a new session reported as moved: %v", moves)
		}
	}

	// No CVM up: a new attachment gets a session waiting on its preferred
	// CVM (the VM's local one), which iscsi.Check accepts as reported down.
	down := []iscsi.CVM{
		{IP: "10.0.0.1", HostUUID: "h1", State: iscsi.CVMDown},
		{IP: "10.0.0.2", HostUUID: "h2", State: iscsi.CVMMaintenance},
	}
	atts := []iscsi.Attachment{{Key: vm, VMHost: "h2"}, {Key: ext}}
	next, moves = planSessions(down, atts, nil, always)
	if len(moves) != 0 || len(next) != 2 || next[0].CVM != "10.0.0.2" || next[1].CVM != "10.0.0.1" {
		t.Fatalf("all down: sessions %v moves %v", next, moves)
	}
	if err := iscsi.Check(down, atts, next); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPlanSessionsFailover10000 is the manager's whole session plan
// (failback, VM redirects, failover, assignment) over 10,000 external
// sessions on 16 CVMs, one of which has just failed.
func BenchmarkPlanSessionsFailover10000(b *testing.B) {
	var cvms []iscsi.CVM
	for i := range 16 {
		cvms = append(cvms, iscsi.CVM{IP: fmt.Sprintf("127.20.0.%d", 31+i), HostUUID: fmt.Sprintf("h%d", i+1), State: iscsi.CVMUp})
	}
	var atts []iscsi.Attachment
	for i := range 2500 {
		for d := range 4 {
			atts = append(atts, iscsi.Attachment{Key: iscsi.Key{Initiator: fmt.Sprintf("iqn.2024-01.com.example:host%d", i), VG: fmt.Sprintf("vg-%d", i), Disk: d}})
		}
	}
	cur, err := iscsi.Assign(cvms, nil, atts)
	if err != nil {
		b.Fatal(err)
	}
	cvms[4].State = iscsi.CVMDown
	always := func(string) bool { return true }
	var next []iscsi.Session
	var moves []iscsi.Move
	for b.Loop() {
		next, moves = planSessions(cvms, atts, cur, always)
	}
	b.StopTimer()
	if err := iscsi.Check(cvms, atts, next); err != nil {
		b.Fatal(err)
	}
	load := iscsi.Load(next)
	lo, hi := len(next), 0
	for _, c := range cvms {
		if c.State == iscsi.CVMUp {
			lo, hi = min(lo, load[c.IP]), max(hi, load[c.IP])
		}
	}
	b.ReportMetric(float64(len(moves)), "moves")
	b.ReportMetric(float64(hi), "max-sessions/CVM")
	b.ReportMetric(float64(lo), "min-sessions/CVM")
}
