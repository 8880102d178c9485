// Package events is clusterd's event bus: a bounded, ordered log of cluster
// events with live subscribers. Every event gets the next sequence number;
// the newest Capacity events are retained for listing and for replay to a
// subscriber that resumes after a sequence number it has seen.
//
// A subscriber that cannot keep up is dropped (its channel closes and
// Lagged reports true) rather than slowing down the publishers; it resumes
// with Subscribe(type, lastSeq).
package events

import (
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// DefaultCapacity is how many events are retained.
const DefaultCapacity = 10000

// subBuffer is how many undelivered events a subscriber may have.
const subBuffer = 1024

// Bus is the event log. The zero value is not usable; call New.
type Bus struct {
	mu   sync.Mutex
	ring []*acliv1.Event // ring[seq%cap] once seq > 0
	cap  int
	last uint64 // last assigned sequence number
	subs map[*Sub]struct{}

	// Durable numbering (Reserve): numbers up to reserved are recorded as
	// taken, so a restart after a crash continues past them.
	reserve  func(upTo uint64) error
	block    uint64
	reserved uint64

	// loaded is the newest event Load read from the store: Persist writes
	// those after it.
	loaded uint64
}

// New returns a bus retaining capacity events, whose first event will have
// sequence number after+1.
func New(capacity int, after uint64) *Bus {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Bus{ring: make([]*acliv1.Event, capacity), cap: capacity, last: after, subs: map[*Sub]struct{}{}}
}

// Restore loads retained events (e.g. from the store) into an empty bus,
// in sequence order, and continues numbering after the newest.
func (b *Bus) Restore(evs []*acliv1.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range evs {
		b.ring[e.Seq%uint64(b.cap)] = e
		b.last = max(b.last, e.Seq)
	}
}

// Reserve makes sequence numbers durable before they are used, so that
// events lost in a crash (published, not yet persisted) never have their
// numbers given again: before the first number past the last reservation,
// Publish calls reserve with the number block further on, which must record
// it (a restart then passes it to New as after). reserve runs with the bus
// locked and must not publish. When it fails the event is published all the
// same and the next Publish tries again.
func (b *Bus) Reserve(block uint64, reserve func(upTo uint64) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserve, b.block, b.reserved = reserve, max(block, 1), b.last
}

// Publish stamps the event with the next sequence number (and the time, if
// unset), retains it and delivers it to subscribers. The event must not be
// modified afterwards.
func (b *Bus) Publish(e *acliv1.Event) uint64 {
	if e.Time == nil {
		e.Time = timestamppb.New(time.Now())
	}
	if e.Severity == "" {
		e.Severity = "info"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reserve != nil && b.last >= b.reserved {
		if err := b.reserve(b.last + b.block); err == nil {
			b.reserved = b.last + b.block
		}
	}
	b.last++
	e.Seq = b.last
	b.ring[e.Seq%uint64(b.cap)] = e
	for s := range b.subs {
		if !s.match(e) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.lagged = true
			b.drop(s)
		}
	}
	return e.Seq
}

// Last returns the newest sequence number.
func (b *Bus) Last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// after returns retained events with seq > since matching typ, oldest first;
// called with b.mu held.
func (b *Bus) after(since uint64, typ string) []*acliv1.Event {
	first := since + 1
	if b.last >= uint64(b.cap) && first <= b.last-uint64(b.cap) {
		first = b.last - uint64(b.cap) + 1
	}
	var out []*acliv1.Event
	for seq := first; seq <= b.last; seq++ {
		e := b.ring[seq%uint64(b.cap)]
		if e != nil && e.Seq == seq && (typ == "" || e.Type == typ) {
			out = append(out, e)
		}
	}
	return out
}

// Since returns every retained event with seq > since, oldest first.
func (b *Bus) Since(since uint64) []*acliv1.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.after(since, "")
}

// List returns the newest limit events of a type ("" = all), oldest first.
func (b *Bus) List(typ string, limit int) []*acliv1.Event {
	b.mu.Lock()
	all := b.after(0, typ)
	b.mu.Unlock()
	if limit > 0 && len(all) > limit {
		all = all[len(all)-limit:]
	}
	return all
}

// Sub is one live subscription.
type Sub struct {
	b      *Bus
	typ    string
	ch     chan *acliv1.Event
	lagged bool
	closed bool
}

func (s *Sub) match(e *acliv1.Event) bool { return s.typ == "" || s.typ == e.Type }

// Subscribe replays retained events of the type with seq > since and then
// delivers new ones. since == 0 replays nothing.
func (b *Bus) Subscribe(typ string, since uint64) *Sub {
	s := &Sub{b: b, typ: typ}
	b.mu.Lock()
	defer b.mu.Unlock()
	var replay []*acliv1.Event
	if since > 0 {
		replay = b.after(since, typ)
	}
	s.ch = make(chan *acliv1.Event, len(replay)+subBuffer)
	for _, e := range replay {
		s.ch <- e
	}
	b.subs[s] = struct{}{}
	return s
}

// C delivers the events; it is closed when the subscription ends.
func (s *Sub) C() <-chan *acliv1.Event { return s.ch }

// Lagged reports whether the subscription was dropped for falling behind.
func (s *Sub) Lagged() bool {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.lagged
}

// Close ends the subscription.
func (s *Sub) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.drop(s)
}

func (b *Bus) drop(s *Sub) {
	if s.closed {
		return
	}
	s.closed = true
	delete(b.subs, s)
	close(s.ch)
}
