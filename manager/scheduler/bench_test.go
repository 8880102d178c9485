package scheduler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// benchCluster builds n hosts (1.5 TiB, 96 cores) with perHost running VMs of
// 1-8 GiB each, and srcVMs VMs on host-1.
func benchCluster(n, perHost, srcVMs int) *Snapshot {
	r := rand.New(rand.NewPCG(42, 7))
	s := cluster(n, 1536)
	for i := range s.Hosts {
		s.Hosts[i].Cores = 96
	}
	id := 0
	add := func(h int) {
		id++
		s.VMs = append(s.VMs, VM{UUID: fmt.Sprintf("vm-%d", id), Name: fmt.Sprintf("vm%06d", id),
			VCPUs: 1 + r.IntN(4), MemoryBytes: int64(1+r.IntN(8)) * gb, Power: PowerOn,
			Host: fmt.Sprintf("host-%d", h), AntiAffinityGroups: antiGroup(r)})
	}
	for i := 0; i < srcVMs; i++ {
		add(1)
	}
	for h := 2; h <= n; h++ {
		for i := 0; i < perHost; i++ {
			add(h)
		}
	}
	s.Recount()
	return s
}

func antiGroup(r *rand.Rand) []string {
	if r.IntN(10) == 0 {
		return []string{fmt.Sprintf("g%d", r.IntN(20))}
	}
	return nil
}

// spread applies the plan and returns max-min and the standard deviation of
// free memory (GiB) across the hosts that remain in service.
func spread(s *Snapshot, p *Plan) (float64, float64) {
	free := map[string]float64{}
	for _, h := range s.Hosts {
		if h.UUID != p.Host.UUID {
			free[h.UUID] = float64(h.MemoryBytes-h.MemoryUsedBytes) / float64(gb)
		}
	}
	mem := map[string]int64{}
	for _, v := range s.VMs {
		mem[v.UUID] = v.MemoryBytes
	}
	for _, st := range p.Steps {
		if st.Action == ActionMigrate {
			free[st.Target.UUID] -= float64(mem[st.VM.UUID]) / float64(gb)
		}
	}
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, f := range free {
		lo, hi, sum = min(lo, f), max(hi, f), sum+f
	}
	mean, sq := sum/float64(len(free)), 0.0
	for _, f := range free {
		sq += (f - mean) * (f - mean)
	}
	return hi - lo, math.Sqrt(sq / float64(len(free)))
}

func benchEvacuation(b *testing.B, n, perHost, srcVMs int) {
	s := benchCluster(n, perHost, srcVMs)
	var p *Plan
	b.ResetTimer()
	for b.Loop() {
		var err error
		if p, err = PlanEvacuation(s, "host-1", Block, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if !p.OK() {
		b.Fatalf("plan blocked: %v", p.Blockers[0])
	}
	d, sd := spread(s, p)
	b.ReportMetric(d, "free-spread-GiB")
	b.ReportMetric(sd, "free-stddev-GiB")
	// The same figures with no VM moved, for comparison: the plan cannot
	// undo imbalance that the other hosts already had.
	d0, _ := spread(s, &Plan{Host: p.Host})
	b.ReportMetric(d0, "before-spread-GiB")
}

// 200 VMs leave one host of a 16-host cluster whose other hosts run 150 VMs each.
func BenchmarkEvacuate16Hosts200VMs(b *testing.B) { benchEvacuation(b, 16, 150, 200) }

// 1,000 hosts, 50 VMs each (50,000 VMs); one host is evacuated.
func BenchmarkEvacuate1000Hosts50000VMs(b *testing.B) { benchEvacuation(b, 1000, 50, 50) }
