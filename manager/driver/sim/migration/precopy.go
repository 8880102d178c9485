// Package migration models a pre-copy live migration, the way QEMU performs
// one: round 1 copies all of the guest's memory while the guest keeps running;
// each next round copies what the guest dirtied during the previous round;
// once what is left can be sent within the maximum pause, the guest is paused
// and the rest copied (the downtime). If that never happens within the round
// limit, the migration fails to converge and the VM stays on its source.
//
// The model is a pure step function: it yields one Round at a time with its
// simulated duration, so a simulated host can sleep that long (scaled to its
// speed) and stream progress between rounds. Nothing here reads a clock.
package migration

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Defaults, as on a 10 GbE host link with QEMU-like limits.
const (
	DefaultBandwidthMbps = 10_000
	DefaultMaxRounds     = 50
	DefaultMaxDowntime   = 300 * time.Millisecond
)

// Units: memory and dirty rate are binary (1 MiB = 2^20 bytes), as memory
// sizes are; bandwidth is decimal megabits (1 Mb/s = 10^6 bit/s), as links are.
const (
	mib          = 1 << 20
	bitsPerMbit  = 1_000_000
	bytesPerMbps = bitsPerMbit / 8
)

// Params describes one migration.
type Params struct {
	// MemoryBytes is the guest's memory.
	MemoryBytes int64
	// DirtyRateMBps is how fast the guest dirties memory, in MiB/s.
	DirtyRateMBps int64
	// BandwidthMbps caps the transfer, in Mb/s; 0 means DefaultBandwidthMbps.
	BandwidthMbps int64
	// MaxRounds is the pre-copy round limit; 0 means DefaultMaxRounds.
	MaxRounds int
	// MaxDowntime is the longest acceptable final pause; 0 means DefaultMaxDowntime.
	MaxDowntime time.Duration
}

// Round is the progress after one pre-copy round.
type Round struct {
	// Round is 1-based.
	Round int
	// Copied is what this round sent.
	Copied int64
	// Transferred is what all rounds so far sent.
	Transferred int64
	// Remaining is what the guest dirtied during this round: still to send.
	Remaining int64
	// EstimatedDowntime is the pause needed to send Remaining now.
	EstimatedDowntime time.Duration
	// Duration is the simulated time the round took.
	Duration time.Duration
	// Converged is set on the last round when Remaining fits in the pause:
	// the stop-and-copy follows.
	Converged bool
}

// Result is the outcome of a finished migration.
type Result struct {
	Rounds int
	// Transferred counts every byte sent, the final stop-and-copy included.
	Transferred int64
	// Downtime is the final pause (zero when the migration failed).
	Downtime time.Duration
	// Duration is the simulated total, pre-copy rounds plus the pause.
	Duration time.Duration
}

// ErrNotConverged is matched (errors.Is) by the error of a migration whose
// dirty rate kept the final pause above the limit for every round.
var ErrNotConverged = errors.New("failure to converge")

// ConvergenceError reports a migration that failed to converge.
type ConvergenceError struct {
	Rounds            int
	Remaining         int64
	EstimatedDowntime time.Duration
	MaxDowntime       time.Duration
}

func (e *ConvergenceError) Error() string {
	return fmt.Sprintf("failure to converge: after %d rounds %d MiB are still dirty and the final pause would be %v (max %v); the VM stays on its source (lower its dirty rate or raise bandwidth_mbps)",
		e.Rounds, e.Remaining/mib, e.EstimatedDowntime.Round(time.Millisecond), e.MaxDowntime)
}

// Is makes errors.Is(err, ErrNotConverged) true.
func (e *ConvergenceError) Is(target error) bool { return target == ErrNotConverged }

// Migration is one migration in progress; call Next until it returns false.
type Migration struct {
	p           Params
	bw          float64 // bytes per second
	dirty       float64 // bytes per second
	round       int
	toCopy      int64 // what the next round sends
	transferred int64
	elapsed     time.Duration
	done        bool
	result      Result
	err         error
}

// New validates p and starts a migration.
func New(p Params) (*Migration, error) {
	switch {
	case p.MemoryBytes <= 0:
		return nil, fmt.Errorf("migration needs the VM's memory size, got %d bytes", p.MemoryBytes)
	case p.DirtyRateMBps < 0:
		return nil, fmt.Errorf("dirty rate %d MB/s is negative (expected 0 or more)", p.DirtyRateMBps)
	case p.BandwidthMbps < 0:
		return nil, fmt.Errorf("bandwidth_mbps=%d is negative (expected e.g. bandwidth_mbps=%d)", p.BandwidthMbps, DefaultBandwidthMbps)
	case p.MaxRounds < 0:
		return nil, fmt.Errorf("max rounds %d is negative (expected e.g. %d)", p.MaxRounds, DefaultMaxRounds)
	case p.MaxDowntime < 0:
		return nil, fmt.Errorf("max downtime %v is negative (expected e.g. %v)", p.MaxDowntime, DefaultMaxDowntime)
	}
	if p.BandwidthMbps == 0 {
		p.BandwidthMbps = DefaultBandwidthMbps
	}
	if p.MaxRounds == 0 {
		p.MaxRounds = DefaultMaxRounds
	}
	if p.MaxDowntime == 0 {
		p.MaxDowntime = DefaultMaxDowntime
	}
	return &Migration{
		p:      p,
		bw:     float64(p.BandwidthMbps) * bytesPerMbps,
		dirty:  float64(p.DirtyRateMBps) * mib,
		toCopy: p.MemoryBytes,
	}, nil
}

// Params returns the parameters in use, defaults filled in.
func (m *Migration) Params() Params { return m.p }

// sendTime is how long n bytes take at the bandwidth cap.
func (m *Migration) sendTime(n int64) time.Duration {
	return time.Duration(math.Ceil(float64(n) / m.bw * float64(time.Second)))
}

// Next runs one pre-copy round and reports it; ok is false once the
// migration has finished (see Result).
func (m *Migration) Next() (r Round, ok bool) {
	if m.done {
		return Round{}, false
	}
	m.round++
	d := m.sendTime(m.toCopy)
	m.transferred += m.toCopy
	m.elapsed += d
	// The guest keeps writing during the round; it cannot dirty more than
	// all of its memory.
	dirtied := int64(math.Ceil(min(m.dirty*d.Seconds(), float64(m.p.MemoryBytes))))
	r = Round{
		Round: m.round, Copied: m.toCopy, Transferred: m.transferred, Remaining: dirtied,
		EstimatedDowntime: m.sendTime(dirtied), Duration: d,
	}
	m.toCopy = dirtied
	switch {
	case r.EstimatedDowntime <= m.p.MaxDowntime:
		r.Converged = true
		m.done = true
		m.result = Result{Rounds: m.round, Transferred: m.transferred + dirtied,
			Downtime: r.EstimatedDowntime, Duration: m.elapsed + r.EstimatedDowntime}
	case m.round >= m.p.MaxRounds:
		m.done = true
		m.result = Result{Rounds: m.round, Transferred: m.transferred, Duration: m.elapsed}
		m.err = &ConvergenceError{Rounds: m.round, Remaining: dirtied,
			EstimatedDowntime: r.EstimatedDowntime, MaxDowntime: m.p.MaxDowntime}
	}
	return r, true
}

// Done reports whether the migration has finished.
func (m *Migration) Done() bool { return m.done }

// Result is the outcome once Done: a *ConvergenceError when the pause never
// fit, in which case the VM stays on its source.
func (m *Migration) Result() (Result, error) {
	if !m.done {
		return Result{}, errors.New("migration still in progress")
	}
	return m.result, m.err
}

// Simulate runs a whole migration and returns every round.
func Simulate(p Params) ([]Round, Result, error) {
	m, err := New(p)
	if err != nil {
		return nil, Result{}, err
	}
	var rounds []Round
	for r, ok := m.Next(); ok; r, ok = m.Next() {
		rounds = append(rounds, r)
	}
	res, err := m.Result()
	return rounds, res, err
}
