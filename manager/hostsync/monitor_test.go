package hostsync

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock ticks when the test says so.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
	ch  chan time.Time
}

func (c *fakeClock) Now() time.Time                                  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Ticker(time.Duration) (<-chan time.Time, func()) { return c.ch, func() {} }

// advance moves the time on, refreshes the heartbeats of fresh at the new
// time, then ticks.
func (c *fakeClock) advance(d time.Duration, fresh func(now time.Time)) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	if fresh != nil {
		fresh(now)
	}
	c.ch <- now
}

func TestDecide(t *testing.T) {
	now := time.Unix(1000, 0)
	fresh, old := now.Add(-time.Second), now.Add(-10*time.Second)
	late, live, suspect := Decide([]Beat{{"a", fresh, false}, {"b", old, false}, {"c", fresh, false}}, now, 5*time.Second)
	if suspect || live != 3 || len(late) != 1 || late[0].ID != "b" {
		t.Fatalf("one silent of three: late %v live %d suspect %v", late, live, suspect)
	}
	// Most hosts silent at once: suspect the manager, mark nothing.
	if _, _, suspect := Decide([]Beat{{"a", fresh, false}, {"b", old, false}, {"c", old, false}}, now, 5*time.Second); !suspect {
		t.Fatal("two silent of three not suspected")
	}
	// Hosts already down do not count.
	if late, live, suspect := Decide([]Beat{{"a", fresh, false}, {"b", old, true}, {"c", old, false}}, now, 5*time.Second); suspect || live != 2 || len(late) != 1 {
		t.Fatalf("one down, one silent: late %v live %d suspect %v", late, live, suspect)
	}
}

func TestRunSkipsStalledRoundsAndSuspects(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0), ch: make(chan time.Time)}
	var mu sync.Mutex
	beats := []Beat{{"a", clock.now, false}, {"b", clock.now, false}, {"c", clock.now, false}}
	var downs []string
	suspects := 0
	m := &Monitor{Timeout: 4 * time.Second, Clock: clock,
		Beats: func() []Beat { mu.Lock(); defer mu.Unlock(); return append([]Beat(nil), beats...) },
		MarkDown: func(id string, _ time.Duration, _ time.Time) {
			mu.Lock()
			defer mu.Unlock()
			downs = append(downs, id)
			for i := range beats {
				if beats[i].ID == id {
					beats[i].Down = true
				}
			}
		},
		Suspect: func(int, int) { mu.Lock(); suspects++; mu.Unlock() },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	fresh := func(ids ...string) func(time.Time) {
		return func(now time.Time) {
			mu.Lock()
			defer mu.Unlock()
			for i := range beats {
				for _, id := range ids {
					if beats[i].ID == id {
						beats[i].Last = now
					}
				}
			}
		}
	}
	clock.advance(0, nil) // Run has started and read the time
	// The manager stalls 10 s: the late round marks nothing down.
	clock.advance(10*time.Second, fresh("a", "b", "c"))
	// b and c go silent together: suspected in two rounds, reported once.
	for range 6 {
		clock.advance(time.Second, fresh("a"))
	}
	// c comes back; b alone is silent: marked down.
	clock.advance(time.Second, fresh("a", "c"))
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if suspects != 1 {
		t.Errorf("suspected %d times, want 1", suspects)
	}
	if len(downs) != 1 || downs[0] != "b" {
		t.Errorf("marked down %v, want [b]", downs)
	}
}
