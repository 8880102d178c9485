package iscsi

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestPlanSessionsPolicy(t *testing.T) {
	cvms := []CVM{
		{IP: "10.0.0.1", HostUUID: "h1", State: CVMUp},
		{IP: "10.0.0.2", HostUUID: "h2", State: CVMUp},
		{IP: "10.0.0.3", HostUUID: "h3", State: CVMUp},
	}
	vm := Key{Initiator: VMInitiator("v1"), VG: "g", Disk: 0}
	ext := Key{Initiator: "iqn.2024-01.com.example:a", VG: "g", Disk: 0}
	gone := Key{Initiator: "iqn.2024-01.com.example:gone", VG: "g", Disk: 0}
	always := func(string) bool { return true }

	// The VM migrated from h1 to h2: its session follows; a detached
	// initiator's session ends; the external one, back home, stays.
	next, moves := PlanSessions(cvms,
		[]Attachment{{Key: vm, VMHost: "h2"}, {Key: ext}},
		[]Session{{Key: vm, CVM: "10.0.0.1", Preferred: "10.0.0.1"}, {Key: ext, CVM: "10.0.0.3", Preferred: "10.0.0.3"}, {Key: gone, CVM: "10.0.0.2"}},
		always)
	if len(next) != 2 || len(moves) != 1 || moves[0] != (Move{Key: vm, From: "10.0.0.1", To: "10.0.0.2"}) {
		t.Fatalf("migration: sessions %v moves %v", next, moves)
	}
	if next[0].Preferred != "10.0.0.2" {
		t.Fatalf("VM session prefers %s, want its new host's CVM", next[0].Preferred)
	}

	// Failback refused (delay not over): the session stays where failover
	// put it; allowed: it returns.
	away := []Session{{Key: ext, CVM: "10.0.0.2", Preferred: "10.0.0.3"}}
	if _, moves := PlanSessions(cvms, []Attachment{{Key: ext}}, away, func(string) bool { return false }); len(moves) != 0 {
		t.Fatalf("failback not allowed yet, but moves %v", moves)
	}
	if _, moves := PlanSessions(cvms, []Attachment{{Key: ext}}, away, always); len(moves) != 1 || moves[0].To != "10.0.0.3" {
		t.Fatalf("failback moves %v", moves)
	}

	// The VM's local CVM down: its session, stranded or new, goes where
	// its own disks are redirected, not merely to the least-loaded CVM.
	h2Down := []CVM{cvms[0], {IP: "10.0.0.2", HostUUID: "h2", State: CVMDown}, cvms[2]}
	own, path := VMDiskCVM(h2Down, "h2", "v1")
	if path != "redirected" {
		t.Fatalf("own disks %s %s", own, path)
	}
	for _, cur := range [][]Session{{{Key: vm, CVM: "10.0.0.2", Preferred: "10.0.0.2"}}, nil} {
		// Load the CVM the VM's disks are redirected to, so least-loaded
		// would choose another.
		var load []Session
		var atts []Attachment
		for i := range 3 {
			k := Key{Initiator: "iqn.2024-01.com.example:b", VG: "g", Disk: i}
			load = append(load, Session{Key: k, CVM: own, Preferred: own})
			atts = append(atts, Attachment{Key: k})
		}
		atts = append(atts, Attachment{Key: vm, VMHost: "h2"})
		next, moves := PlanSessions(h2Down, atts, append(load, cur...), always)
		for _, s := range next {
			if s.Key == vm && (s.CVM != own || s.Preferred != "10.0.0.2") {
				t.Fatalf("vm session %v, want it on %s (own disks) preferring 10.0.0.2", s, own)
			}
		}
		if len(cur) == 1 && (len(moves) != 1 || moves[0] != (Move{Key: vm, From: "10.0.0.2", To: own})) {
			t.Fatalf("moves %v", moves)
		} else if len(cur) == 0 && len(moves) != 0 {
			t.Fatalf("a new session reported as moved: %v", moves)
		}
	}

	// No CVM up: a new attachment gets a session waiting on its preferred
	// CVM (the VM's local one), which Check accepts as reported down.
	down := []CVM{
		{IP: "10.0.0.1", HostUUID: "h1", State: CVMDown},
		{IP: "10.0.0.2", HostUUID: "h2", State: CVMMaintenance},
	}
	atts := []Attachment{{Key: vm, VMHost: "h2"}, {Key: ext}}
	next, moves = PlanSessions(down, atts, nil, always)
	if len(moves) != 0 || len(next) != 2 || next[0].CVM != "10.0.0.2" || next[1].CVM != "10.0.0.1" {
		t.Fatalf("all down: sessions %v moves %v", next, moves)
	}
	if err := Check(down, atts, next); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPlanSessionsFailover10000 is the manager's whole session plan
// (failback, VM redirects, failover, assignment) over 10,000 external
// sessions on 16 CVMs, one of which has just failed.
func BenchmarkPlanSessionsFailover10000(b *testing.B) {
	var cvms []CVM
	for i := range 16 {
		cvms = append(cvms, CVM{IP: fmt.Sprintf("127.20.0.%d", 31+i), HostUUID: fmt.Sprintf("h%d", i+1), State: CVMUp})
	}
	var atts []Attachment
	for i := range 2500 {
		for d := range 4 {
			atts = append(atts, Attachment{Key: Key{Initiator: fmt.Sprintf("iqn.2024-01.com.example:host%d", i), VG: fmt.Sprintf("vg-%d", i), Disk: d}})
		}
	}
	cur, err := Assign(cvms, nil, atts)
	if err != nil {
		b.Fatal(err)
	}
	cvms[4].State = CVMDown
	always := func(string) bool { return true }
	var next []Session
	var moves []Move
	for b.Loop() {
		next, moves = PlanSessions(cvms, atts, cur, always)
	}
	b.StopTimer()
	if err := Check(cvms, atts, next); err != nil {
		b.Fatal(err)
	}
	load := Load(next)
	lo, hi := len(next), 0
	for _, c := range cvms {
		if c.State == CVMUp {
			lo, hi = min(lo, load[c.IP]), max(hi, load[c.IP])
		}
	}
	b.ReportMetric(float64(len(moves)), "moves")
	b.ReportMetric(float64(hi), "max-sessions/CVM")
	b.ReportMetric(float64(lo), "min-sessions/CVM")
}

// TestPropertyPolicyUnderFailures drives PlanSessions, the policy clusterd
// runs, through random CVM failures, maintenance, recoveries, VM migrations,
// attaches and detaches: after each plan every attachment has one session on
// an up CVM (while one is up), and planning again moves nothing.
func TestPropertyPolicyUnderFailures(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	var moves int
	for run := 0; run < 40; run++ {
		c := cvms(2 + r.IntN(5))
		var atts []Attachment
		var sessions []Session
		for step := 0; step < 150; step++ {
			switch k := r.IntN(12); {
			case k < 3:
				c[r.IntN(len(c))].State = CVMState(1 + r.IntN(2))
			case k < 6:
				c[r.IntN(len(c))].State = CVMUp
			case k < 8:
				vg := fmt.Sprintf("vg-%d", r.IntN(20))
				init := fmt.Sprintf("iqn.2024-01.com.example:i%d", r.IntN(5))
				var mod func(*Attachment)
				if r.IntN(2) == 0 {
					init = VMInitiator(fmt.Sprintf("vm-%d", r.IntN(5)))
					host, lb := fmt.Sprintf("host-%d", 1+r.IntN(len(c))), r.IntN(2) == 0
					mod = func(a *Attachment) { a.VMHost, a.LoadBalance = host, lb }
				}
				for _, a := range disks(init, vg, 1+r.IntN(3), mod) {
					if !hasKey(atts, a.Key) {
						atts = append(atts, a)
					}
				}
			case k < 10 && len(atts) > 0: // a VM migrates
				i := r.IntN(len(atts))
				if atts[i].VMHost != "" {
					atts[i].VMHost = fmt.Sprintf("host-%d", 1+r.IntN(len(c)))
				}
			case len(atts) > 0:
				i := r.IntN(len(atts))
				atts = append(atts[:i], atts[i+1:]...)
			}
			failback := func(string) bool { return r.IntN(3) != 0 }
			next, mv := PlanSessions(c, atts, sessions, failback)
			moves += len(mv)
			if err := Check(c, atts, next); err != nil {
				t.Fatalf("run %d step %d: %v", run, step, err)
			}
			if _, again := PlanSessions(c, atts, next, func(string) bool { return false }); len(again) != 0 {
				t.Fatalf("run %d step %d: planning again moves %v", run, step, again)
			}
			sessions = next
		}
	}
	if moves == 0 {
		t.Fatal("no session ever moved: the property was not exercised")
	}
}
