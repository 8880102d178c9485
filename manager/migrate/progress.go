// Package migrate holds what live migration decides on its own: how far a
// pre-copy has come and whether it can finish.
package migrate

import (
	"fmt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/scheduler"
)

// Percent is a migration's progress from the bytes sent and the
// bytes still dirty: every round moves it, so a VM that keeps re-dirtying
// its memory is not stuck at 1% (99 until switched over).
func Percent(p *acliv1.MigrationProgress) int32 {
	sent, left := max(p.TransferredBytes, 0), max(p.RemainingBytes, 0)
	if sent+left == 0 {
		return 0
	}
	return int32(min(sent*100/(sent+left), 99))
}

// Convergence watches pre-copy rounds for a migration that cannot finish:
// the guest dirties memory at least as fast as the stream sends it, or a
// later round leaves no less to send than the one before.
type Convergence struct {
	prevRound     int32
	prevRemaining int64
	warned        string
}

// Observe returns the warning to show with this round ("" while the
// migration converges) and whether it is new.
func (c *Convergence) Observe(p *acliv1.MigrationProgress) (string, bool) {
	defer func() { c.prevRound, c.prevRemaining = p.Round, p.RemainingBytes }()
	if c.warned != "" {
		return c.warned, false
	}
	dirty, bw := p.DirtyRateBytesPerSec, p.BandwidthBytesPerSec
	switch {
	case dirty > 0 && bw > 0 && dirty >= bw:
		c.warned = fmt.Sprintf("not converging: the guest dirties memory at %s/s, the stream sends %s/s (%d Mb/s); raise bandwidth_mbps or lower the guest's load",
			scheduler.Bytes(dirty), scheduler.Bytes(bw), bw*8/1_000_000)
	case p.Round > c.prevRound && c.prevRound >= 1 && p.RemainingBytes > 0 && p.RemainingBytes >= c.prevRemaining:
		rates := ""
		if dirty > 0 && bw > 0 {
			rates = fmt.Sprintf(" (the guest dirties %s/s, the stream sends %s/s)", scheduler.Bytes(dirty), scheduler.Bytes(bw))
		}
		c.warned = fmt.Sprintf("not converging: round %d left %s to send, no less than round %d%s; raise bandwidth_mbps or lower the guest's load",
			p.Round, scheduler.Bytes(p.RemainingBytes), c.prevRound, rates)
	default:
		return "", false
	}
	return c.warned, true
}
