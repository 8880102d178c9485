package hostsync

import (
	"context"
	"log/slog"
	"sync"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
)

// Beats is the heartbeat table as host reports use it (ha.Beats).
type Beats interface {
	// Receive records a heartbeat and reports whether it brings a host
	// recorded down back.
	Receive(host string, sent, now time.Time) (back bool)
	// MarkingDown: only heartbeats sent after at bring the host back.
	MarkingDown(host string, at time.Time)
	Seen(host string, now time.Time)
	// Consume reads the driver's reports until ch closes: heartbeats are
	// taken by receipt, and the other reports (and a heartbeat that brings
	// a host back) go to apply in order, on another goroutine.
	Consume(ch <-chan driver.HostEvent, now func() time.Time, apply func(driver.HostEvent))
}

// Change is one committed host state change and the event that tells it.
type Change struct {
	Event      driver.HostEvent
	Prev, Next *acliv1.Host
	// Type ("host" or "cvm"), Severity and Message are the event to publish.
	Type, Severity, Message string
}

// Events applies the driver's host reports to the committed state. A
// host's state changes only through state.TransitionHost, one report at a
// time, and never by a report older than the last one applied to the host:
// the heartbeat monitor's verdict on a silent host, reached before a
// fault's recovery was applied, would otherwise undo the recovery. Reports
// are idempotent: one that changes nothing commits nothing.
type Events struct {
	DB    *state.DB // the committed host records
	Beats Beats
	Now   func() time.Time
	// Commit writes next over the host's record, which must still be at
	// rev (a store conflict otherwise).
	Commit func(ctx context.Context, next *acliv1.Host, rev int64) error
	// VmStates applies a report of what a host runs.
	VmStates func(ctx context.Context, ev driver.HostEvent) error
	// Publish is told of each committed change, in commit order.
	Publish func(Change)
	// Changed is told of each committed change after Publish, outside the
	// serialisation (it may start tasks). The next report of the same host
	// waits for it, so a report that finds its change already applied (a
	// fault's and the heartbeat monitor's of one failure) returns once the
	// change's consequences are committed too, not while they are under way.
	Changed func(Change)
	Log     *slog.Logger // what Consume could not apply

	mu       sync.Mutex
	at       map[string]time.Time     // host UUID -> time of the last change applied
	changing map[string]chan struct{} // host UUID -> closed when its Changed returns
}

// Consume applies the driver's host reports until the driver closes the
// stream. Heartbeats are taken by receipt (Beats.Consume), so a slow
// report, waiting on a commit or on the manager's lock, delays none.
func (e *Events) Consume(ch <-chan driver.HostEvent) {
	e.Beats.Consume(ch, e.Now, func(ev driver.HostEvent) {
		if err := e.Apply(context.Background(), ev); err != nil {
			e.Log.Error("applying host event", "host", ev.HostUUID, "event", ev.Kind.String(), "err", err)
		}
	})
}

// Apply records the host state change a report means.
func (e *Events) Apply(ctx context.Context, ev driver.HostEvent) error {
	if ev.Kind == driver.VmStates {
		return e.VmStates(ctx, ev)
	}
	if ev.Kind == driver.HostDevices {
		return e.devices(ctx, ev)
	}
	if ev.Kind == driver.Heartbeat {
		if !e.Beats.Receive(ev.HostUUID, ev.Time, e.Now()) {
			return nil
		}
		// A heartbeat sent after the host was marked down: it is back.
		ev = driver.HostEvent{Kind: driver.HostUp, HostUUID: ev.HostUUID, Time: ev.Time, Reason: "heartbeats resumed"}
	}
	e.mu.Lock()
	for done := e.changing[ev.HostUUID]; done != nil; done = e.changing[ev.HostUUID] {
		e.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		e.mu.Lock()
	}
	if last, ok := e.at[ev.HostUUID]; ok && ev.Time.Before(last) {
		e.mu.Unlock()
		return nil
	}
	c, err := e.commit(ctx, ev)
	if err == nil && !ev.Time.IsZero() {
		if e.at == nil {
			e.at = map[string]time.Time{}
		}
		e.at[ev.HostUUID] = ev.Time
	}
	if c != nil {
		e.Publish(*c)
	}
	if c == nil || e.Changed == nil {
		e.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	if e.changing == nil {
		e.changing = map[string]chan struct{}{}
	}
	e.changing[ev.HostUUID] = done
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.changing, ev.HostUUID)
		e.mu.Unlock()
		close(done)
	}()
	e.Changed(*c)
	return err
}

// commitAttempts bounds how often a report is computed again after a
// concurrent commit changed its host.
const commitAttempts = 8

// commit records the change ev means; nil when there is nothing to change.
// On a conflict with a concurrent task the change is computed again at
// once from the new record: a View sees commits accepted but not yet
// durable (state's provisional reads), so a conflict means the record
// really changed and the re-read finds the change.
func (e *Events) commit(ctx context.Context, ev driver.HostEvent) (*Change, error) {
	for attempt := 1; ; attempt++ {
		var cur *acliv1.Host
		var rev int64
		var running int
		e.DB.View(func(tx *state.Tx) {
			cur, rev, running = tx.Host(ev.HostUUID), tx.Rev(state.HostKey(ev.HostUUID)), len(tx.VmsOn(ev.HostUUID))
		})
		if cur == nil {
			return nil, nil
		}
		c, ok := Describe(ev, cur)
		if !ok {
			return nil, nil
		}
		next, err := state.TransitionHost(cur, observed[ev.Kind])
		if err == nil && ev.Kind == driver.HostUp {
			next = state.Recovered(next, running)
		}
		if err != nil || next == cur {
			return nil, err // observations are never refused; nothing to change
		}
		if ev.Kind == driver.HostDown {
			// Only heartbeats sent after this bring the host back; stored
			// before the commit marks the host down (heartbeat reads both).
			e.Beats.MarkingDown(cur.Uuid, ev.Time)
		}
		err = e.Commit(ctx, next, rev)
		if store.IsConflict(err) && attempt < commitAttempts {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ev.Kind == driver.HostUp {
			e.Beats.Seen(cur.Uuid, e.Now())
		}
		c.Prev, c.Next = cur, next
		return &c, nil
	}
}

// observed is the host change each driver report means.
var observed = map[driver.EventKind]state.HostChange{
	driver.HostDown: state.HostDown, driver.HostUp: state.HostUp,
	driver.CvmDown: state.CvmDown, driver.CvmUp: state.CvmUp,
}

// Describe is the event a report about host cur publishes when it changes
// the host; ok is false for reports that are not host state changes.
func Describe(ev driver.HostEvent, cur *acliv1.Host) (c Change, ok bool) {
	c = Change{Event: ev, Type: "host", Severity: "info"}
	host := cur.Name + " (" + cur.HypervisorIp + ")"
	switch ev.Kind {
	case driver.HostDown:
		c.Message, c.Severity = "host "+host+" is down: "+ev.Reason, "error"
	case driver.HostUp:
		c.Message = "host " + host + " is up: " + ev.Reason
	case driver.CvmDown:
		c.Message, c.Severity, c.Type = "cvm "+cur.CvmIp+" on host "+cur.Name+" is down: "+ev.Reason, "error", "cvm"
	case driver.CvmUp:
		c.Message, c.Type = "cvm "+cur.CvmIp+" on host "+cur.Name+" is up: "+ev.Reason, "cvm"
	default:
		return Change{}, false
	}
	return c, true
}
