package migrate

import (
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim/migration"
)

// A guest dirtying memory faster than the link: the percent moves every
// round and the first round already warns, naming both rates.
func TestPrecopyProgressOfANonConvergingVM(t *testing.T) {
	const mem = 8 << 30
	rounds, _, err := migration.Simulate(migration.Params{MemoryBytes: mem, DirtyRateMBps: 2000, BandwidthMbps: 10_000})
	if err == nil || len(rounds) < 10 {
		t.Fatalf("model: %d rounds, %v", len(rounds), err)
	}
	var c Convergence
	var pcts []int32
	for i, r := range rounds {
		p := &acliv1.MigrationProgress{Round: int32(r.Round), RemainingBytes: r.Remaining, TransferredBytes: r.Transferred,
			DirtyRateBytesPerSec: 2000 << 20, BandwidthBytesPerSec: 10_000 * 1_000_000 / 8}
		warn, first := c.Observe(p)
		want := "not converging: the guest dirties memory at 2.0 GiB/s, the stream sends 1.2 GiB/s (10000 Mb/s); raise bandwidth_mbps or lower the guest's load"
		if warn != want || first != (i == 0) {
			t.Fatalf("round %d: %q first=%v", r.Round, warn, first)
		}
		pcts = append(pcts, Percent(p))
	}
	if pcts[0] != 50 || pcts[len(pcts)-1] < 97 {
		t.Fatalf("percent by round: %v", pcts)
	}
	for i := 1; i < len(pcts); i++ {
		if pcts[i] < pcts[i-1] {
			t.Fatalf("percent went back: %v", pcts)
		}
	}
}

// Without rates (a driver that does not report them), a round that leaves
// no less than the one before warns; a shrinking one does not.
func TestConvergenceFromRemainingBytes(t *testing.T) {
	var c Convergence
	for _, s := range []struct {
		round  int32
		remain int64
		warn   string
	}{
		{1, 900 << 20, ""},
		{2, 400 << 20, ""},
		{3, 450 << 20, "not converging: round 3 left 450 MiB to send, no less than round 2; raise bandwidth_mbps or lower the guest's load"},
		{4, 10 << 20, "not converging: round 3 left 450 MiB to send, no less than round 2; raise bandwidth_mbps or lower the guest's load"},
	} {
		warn, _ := c.Observe(&acliv1.MigrationProgress{Round: s.round, RemainingBytes: s.remain})
		if warn != s.warn {
			t.Errorf("round %d: %q, want %q", s.round, warn, s.warn)
		}
	}
	if got := Percent(&acliv1.MigrationProgress{}); got != 0 {
		t.Errorf("empty progress: %d", got)
	}
}
