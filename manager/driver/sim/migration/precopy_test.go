package migration

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

const gib = int64(1) << 30

func TestConvergesForModestDirtyRate(t *testing.T) {
	// 8 GiB at 10 Gb/s (1.25 GB/s), dirtying 100 MiB/s: round 1 takes ~6.9 s
	// and leaves ~687 MiB; round 2 takes ~0.58 s and leaves ~58 MiB, which
	// fits a ~48 ms pause.
	rounds, res, err := Simulate(Params{MemoryBytes: 8 * gib, DirtyRateMBps: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(rounds) != 2 || res.Rounds != 2 || !rounds[1].Converged || rounds[0].Converged {
		t.Fatalf("rounds %+v", rounds)
	}
	if rounds[0].Copied != 8*gib {
		t.Errorf("round 1 copied %d, want all memory", rounds[0].Copied)
	}
	if rounds[1].Copied != rounds[0].Remaining {
		t.Errorf("round 2 copied %d, want round 1's dirty set %d", rounds[1].Copied, rounds[0].Remaining)
	}
	if d := rounds[0].Duration; d < 6870*time.Millisecond || d > 6873*time.Millisecond {
		t.Errorf("round 1 took %v, want ~6.872s", d)
	}
	if res.Downtime < 40*time.Millisecond || res.Downtime > 50*time.Millisecond {
		t.Errorf("downtime %v, want ~48ms", res.Downtime)
	}
	if res.Transferred != rounds[1].Transferred+rounds[1].Remaining {
		t.Errorf("transferred %d does not include the final copy", res.Transferred)
	}
	if res.Duration != rounds[0].Duration+rounds[1].Duration+res.Downtime {
		t.Errorf("duration %v", res.Duration)
	}
}

func TestFailsToConvergeWhenDirtyRateReachesBandwidth(t *testing.T) {
	// 1 Gb/s is 125e6 B/s; 120 MiB/s is 125.8e6 B/s.
	for _, dirty := range []int64{120, 500} {
		rounds, res, err := Simulate(Params{MemoryBytes: 8 * gib, DirtyRateMBps: dirty, BandwidthMbps: 1000})
		if !errors.Is(err, ErrNotConverged) {
			t.Fatalf("dirty %d: err = %v, want failure to converge", dirty, err)
		}
		if !strings.HasPrefix(err.Error(), "failure to converge: after 50 rounds") {
			t.Errorf("message %q", err)
		}
		if len(rounds) != DefaultMaxRounds || res.Downtime != 0 {
			t.Errorf("dirty %d: %d rounds, downtime %v", dirty, len(rounds), res.Downtime)
		}
		for _, r := range rounds {
			if r.Converged {
				t.Fatalf("round %d marked converged", r.Round)
			}
		}
	}
}

func TestBandwidthCapHonoured(t *testing.T) {
	for _, bw := range []int64{100, 1000, 10_000, 25_000} {
		rounds, _, _ := Simulate(Params{MemoryBytes: 4 * gib, DirtyRateMBps: 50, BandwidthMbps: bw})
		limit := float64(bw) * 1e6 / 8
		for _, r := range rounds {
			if rate := float64(r.Copied) / r.Duration.Seconds(); rate > limit*(1+1e-9) {
				t.Fatalf("bw %d Mb/s: round %d sent at %.0f B/s, above %.0f", bw, r.Round, rate, limit)
			}
		}
	}
	// Halving the bandwidth doubles round 1.
	a, _, _ := Simulate(Params{MemoryBytes: 4 * gib, BandwidthMbps: 2000})
	b, _, _ := Simulate(Params{MemoryBytes: 4 * gib, BandwidthMbps: 1000})
	if d := b[0].Duration - 2*a[0].Duration; d < -time.Microsecond || d > time.Microsecond {
		t.Fatalf("round 1 at 1 Gb/s %v, at 2 Gb/s %v", b[0].Duration, a[0].Duration)
	}
}

func TestDowntimeWithinLimitOnSuccess(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	converged, failed := 0, 0
	for i := 0; i < 2000; i++ {
		p := Params{MemoryBytes: int64(1+r.IntN(64)) * gib, DirtyRateMBps: int64(r.IntN(1500)),
			BandwidthMbps: int64(100 + r.IntN(25_000))}
		rounds, res, err := Simulate(p)
		if err != nil {
			failed++
			continue
		}
		converged++
		if res.Downtime > DefaultMaxDowntime || res.Downtime != rounds[len(rounds)-1].EstimatedDowntime {
			t.Fatalf("%+v: downtime %v", p, res.Downtime)
		}
		for k := 1; k < len(rounds); k++ {
			if rounds[k].Remaining > rounds[k-1].Remaining {
				t.Fatalf("%+v: remaining grew on a converging migration", p)
			}
		}
	}
	if converged == 0 || failed == 0 {
		t.Fatalf("converged %d, failed %d: want both outcomes exercised", converged, failed)
	}
}

func TestStepFunction(t *testing.T) {
	m, err := New(Params{MemoryBytes: gib, DirtyRateMBps: 10, MaxDowntime: 10 * time.Millisecond, MaxRounds: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Result(); err == nil {
		t.Fatal("Result before the end gave no error")
	}
	n := 0
	for r, ok := m.Next(); ok; r, ok = m.Next() {
		n++
		if r.Round != n {
			t.Fatalf("round %d numbered %d", n, r.Round)
		}
	}
	if !m.Done() {
		t.Fatal("not done after Next returned false")
	}
	if _, ok := m.Next(); ok {
		t.Fatal("Next after the end")
	}
	if res, err := m.Result(); err != nil || res.Rounds != n || res.Downtime > 10*time.Millisecond {
		t.Fatalf("result %+v %v", res, err)
	}
	if p := m.Params(); p.BandwidthMbps != DefaultBandwidthMbps || p.MaxRounds != 5 {
		t.Fatalf("params %+v", p)
	}
}

func TestInvalidParams(t *testing.T) {
	for _, p := range []Params{
		{},
		{MemoryBytes: gib, DirtyRateMBps: -1},
		{MemoryBytes: gib, BandwidthMbps: -5},
		{MemoryBytes: gib, MaxRounds: -1},
		{MemoryBytes: gib, MaxDowntime: -time.Second},
	} {
		if _, err := New(p); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

func BenchmarkSimulateNonConverging(b *testing.B) {
	for b.Loop() {
		_, _, _ = Simulate(Params{MemoryBytes: 64 * gib, DirtyRateMBps: 2000})
	}
}
