package iscsi

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestPropertyInvariantUnderFailures drives random CVM failures, maintenance,
// recoveries, attaches and detaches, reconciling after each event as the
// manager does, and checks the invariant every time.
func TestPropertyInvariantUnderFailures(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var moves, downs int
	for run := 0; run < 50; run++ {
		c := cvms(2 + r.IntN(6))
		var atts []Attachment
		var sessions []Session
		for step := 0; step < 200; step++ {
			switch k := r.IntN(10); {
			case k < 3: // a CVM fails or enters maintenance
				c[r.IntN(len(c))].State = CVMState(1 + r.IntN(2))
			case k < 6: // a CVM recovers
				c[r.IntN(len(c))].State = CVMUp
			case k < 8 && !Down(c): // attach a VG's disks
				vg := fmt.Sprintf("vg-%d", r.IntN(20))
				init := fmt.Sprintf("iqn.2024-01.com.example:i%d", r.IntN(5))
				mod := func(a *Attachment) {}
				if r.IntN(2) == 0 {
					host, lb := fmt.Sprintf("host-%d", 1+r.IntN(len(c))), r.IntN(2) == 0
					mod = func(a *Attachment) { a.VMHost, a.LoadBalance = host, lb }
				}
				add := disks(init, vg, 1+r.IntN(4), mod)
				created, err := Assign(c, sessions, add)
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range add {
					if !hasKey(atts, a.Key) {
						atts = append(atts, a)
					}
				}
				sessions = append(sessions, created...)
			case len(atts) > 0: // detach one disk
				i := r.IntN(len(atts))
				key := atts[i].Key
				atts = append(atts[:i], atts[i+1:]...)
				for j := range sessions {
					if sessions[j].Key == key {
						sessions = append(sessions[:j], sessions[j+1:]...)
						break
					}
				}
			}
			failback := r.IntN(3) != 0
			p, err := Reconcile(c, sessions, failback)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range p.Moves {
				if m.From == m.To {
					t.Fatalf("no-op move %v", m)
				}
				if !failback && upIP(c, m.From) {
					t.Fatalf("failover moved %v off a healthy CVM", m)
				}
			}
			if len(p.Down) > 0 && !Down(c) {
				t.Fatalf("sessions reported down while a CVM is up")
			}
			moves += len(p.Moves)
			downs += len(p.Down)
			sessions = Apply(sessions, p.Moves)
			if err := Check(c, atts, sessions); err != nil {
				t.Fatalf("run %d step %d: %v", run, step, err)
			}
			// A second pass finds nothing left to do.
			if p2, _ := Reconcile(c, sessions, failback); len(p2.Moves) != 0 {
				t.Fatalf("run %d step %d: reconcile not idempotent: %v", run, step, p2.Moves)
			}
		}
	}
	if moves == 0 || downs == 0 {
		t.Fatalf("moves %d, down reports %d: want both exercised", moves, downs)
	}
}

func upIP(c []CVM, ip string) bool {
	for _, v := range c {
		if v.IP == ip {
			return v.State == CVMUp
		}
	}
	return false
}

func hasKey(atts []Attachment, k Key) bool {
	for _, a := range atts {
		if a.Key == k {
			return true
		}
	}
	return false
}

// BenchmarkFailover10000Sessions: 10,000 sessions spread over 16 CVMs; one
// CVM fails and its sessions are re-planned.
func BenchmarkFailover10000Sessions(b *testing.B) {
	c := cvms(16)
	var atts []Attachment
	for i := 0; i < 2500; i++ {
		atts = append(atts, disks(fmt.Sprintf("iqn.2024-01.com.example:host%d", i), fmt.Sprintf("vg-%d", i), 4, nil)...)
	}
	sessions, err := Assign(c, nil, atts)
	if err != nil {
		b.Fatal(err)
	}
	c[4].State = CVMDown
	var p *Plan
	for b.Loop() {
		if p, err = Failover(c, sessions); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	after := Apply(sessions, p.Moves)
	if err := Check(c, atts, after); err != nil {
		b.Fatal(err)
	}
	load := Load(after)
	lo, hi := len(after), 0
	for _, v := range c {
		if v.State == CVMUp {
			lo, hi = min(lo, load[v.IP]), max(hi, load[v.IP])
		}
	}
	b.ReportMetric(float64(len(p.Moves)), "moves")
	b.ReportMetric(float64(hi), "max-sessions/CVM")
	b.ReportMetric(float64(lo), "min-sessions/CVM")
}
