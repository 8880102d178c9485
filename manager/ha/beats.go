package ha

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/hostsync"
)

// Beats is the heartbeat table: when each host was last heard from. It
// takes no lock of the manager's model, so a request holding the model
// never makes a host look silent.
type Beats struct {
	hosts sync.Map // host UUID -> *beat
}

type beat struct {
	last   atomic.Int64 // unix ns when the last heartbeat was received
	down   atomic.Bool  // the host is recorded down
	downAt atomic.Int64 // unix ns (host time) when it was declared down
}

func (b *Beats) get(host string) *beat {
	v, ok := b.hosts.Load(host)
	if !ok {
		v, _ = b.hosts.LoadOrStore(host, &beat{})
	}
	return v.(*beat)
}

// Track follows a host and records whether it is down. A host tracked up
// that was down or is new counts as heard from at now (the heartbeat that
// brought it back, or its join, was just received): else the monitor could
// find it silent, by its last beat from before the outage or by none,
// before the Seen that follows the commit, and mark it down again.
func (b *Beats) Track(host string, down bool, now time.Time) {
	h := b.get(host)
	if was := h.down.Swap(down); !down && (was || h.last.Load() == 0) {
		h.last.Store(now.UnixNano())
	}
}

// Forget stops following a host that left the cluster.
func (b *Beats) Forget(host string) { b.hosts.Delete(host) }

// Seen counts the host as heard from at now.
func (b *Beats) Seen(host string, now time.Time) { b.get(host).last.Store(now.UnixNano()) }

// Arm counts every host never heard from as heard from at now, so the
// timeout runs from the start of the watch.
func (b *Beats) Arm(now time.Time) {
	b.hosts.Range(func(_, v any) bool {
		v.(*beat).last.CompareAndSwap(0, now.UnixNano())
		return true
	})
}

// MarkingDown records that the host is being declared down by an event
// sent at at: only heartbeats sent after it bring the host back.
func (b *Beats) MarkingDown(host string, at time.Time) { b.get(host).downAt.Store(at.UnixNano()) }

// Last is when the host was last heard from (zero if never).
func (b *Beats) Last(host string) time.Time {
	v, ok := b.hosts.Load(host)
	if !ok {
		return time.Time{}
	}
	if n := v.(*beat).last.Load(); n > 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Receive records a heartbeat sent at sent and received at now. It reports
// back when the heartbeat means more: it was sent after its host was
// declared down, so the host is back (and the heartbeat is not recorded).
func (b *Beats) Receive(host string, sent, now time.Time) (back bool) {
	v, ok := b.hosts.Load(host)
	if !ok {
		return false
	}
	h := v.(*beat)
	if h.down.Load() && sent.UnixNano() > h.downAt.Load() {
		return true
	}
	h.last.Store(now.UnixNano())
	return false
}

// List is what the heartbeat monitor knows of every host.
func (b *Beats) List() []hostsync.Beat {
	var out []hostsync.Beat
	b.hosts.Range(func(k, v any) bool {
		h := v.(*beat)
		out = append(out, hostsync.Beat{ID: k.(string), Last: time.Unix(0, h.last.Load()), Down: h.down.Load()})
		return true
	})
	return out
}

// Consume reads the driver's host reports until the stream closes.
// Heartbeats are taken here, by receipt; every other report, and a
// heartbeat that brings a down host back, goes to apply in order on a
// second goroutine, so a slow one (a commit, a lock held by a request)
// delays no heartbeat.
func (b *Beats) Consume(ch <-chan driver.HostEvent, now func() time.Time, apply func(driver.HostEvent)) {
	changes := make(chan driver.HostEvent, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range changes {
			apply(ev)
		}
	}()
	for ev := range ch {
		if ev.Kind == driver.Heartbeat && !b.Receive(ev.HostUUID, ev.Time, now()) {
			continue
		}
		changes <- ev
	}
	close(changes)
	<-done
}
