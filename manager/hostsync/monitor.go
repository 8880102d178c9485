// Package hostsync watches host heartbeats: a controller with Run(ctx) and
// an injected clock that reports the hosts to mark down. Like the
// Kubernetes node lifecycle controller, it marks nothing down when most
// hosts go silent at once (the manager or its network is failing, not the
// hosts), nor after a round that itself ran late (the manager was stalled,
// so heartbeats waiting to be read look missed).
package hostsync

import (
	"context"
	"time"
)

// Beat is what the monitor knows of one host.
type Beat struct {
	ID   string
	Last time.Time // when its last heartbeat was received
	Down bool      // already marked down
}

// Clock is time as the monitor sees it; tests inject their own.
type Clock interface {
	Now() time.Time
	// Ticker returns a channel ticking every d and a func to stop it.
	Ticker(d time.Duration) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Ticker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Monitor marks silent hosts down.
type Monitor struct {
	Timeout time.Duration
	Clock   Clock // default: the real clock
	// Beats lists the hosts; it must not wait for the manager's model.
	Beats func() []Beat
	// MarkDown is called for each host silent for longer than Timeout.
	MarkDown func(id string, silent time.Duration, now time.Time)
	// Suspect is called once when most hosts go silent at once, with how
	// many are silent of how many are up; nothing is marked down then.
	Suspect func(silent, live int)
}

// Silent is one host to mark down.
type Silent struct {
	ID  string
	For time.Duration
}

// Decide is one round: the hosts to mark down, or suspect when most of the
// hosts not down are silent at once (then none is marked down).
func Decide(beats []Beat, now time.Time, timeout time.Duration) (late []Silent, live int, suspect bool) {
	for _, b := range beats {
		if b.Down {
			continue
		}
		live++
		if d := now.Sub(b.Last); d > timeout {
			late = append(late, Silent{b.ID, d})
		}
	}
	if len(late) > 1 && 2*len(late) > live {
		return late, live, true
	}
	return late, live, false
}

// Run checks the heartbeats a few times per timeout until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	clock := m.Clock
	if clock == nil {
		clock = realClock{}
	}
	period := max(m.Timeout/4, 10*time.Millisecond)
	tick, stop := clock.Ticker(period)
	defer stop()
	last := clock.Now()
	suspecting := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		now := clock.Now()
		stalled := now.Sub(last) > period+m.Timeout/2
		last = now
		if stalled {
			continue
		}
		late, live, suspect := Decide(m.Beats(), now, m.Timeout)
		if suspect {
			if !suspecting && m.Suspect != nil {
				m.Suspect(len(late), live)
			}
			suspecting = true
			continue
		}
		suspecting = false
		for _, s := range late {
			m.MarkDown(s.ID, s.For, now)
		}
	}
}
