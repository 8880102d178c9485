package libvirt

import (
	"context"
	"encoding/xml"
	"fmt"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// EventType is what happened to a domain.
type EventType int

const (
	EventDefined EventType = iota
	EventUndefined
	EventStarted
	EventSuspended
	EventResumed
	EventStopped
	EventShutdown // guest-initiated shutdown finished; a Stopped follows
	EventPMSuspended
	EventCrashed
)

var eventNames = [...]string{"defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown", "pm-suspended", "crashed"}

func (e EventType) String() string {
	if e >= 0 && int(e) < len(eventNames) {
		return eventNames[e]
	}
	return fmt.Sprintf("event(%d)", int(e))
}

// Event is a domain lifecycle change reported by a host, including ones made behind
// clusterd's back (virsh, a guest powering itself off, a QEMU crash).
type Event struct {
	Domain string
	UUID   string
	Type   EventType
	Detail int32 // libvirt's per-type detail code
	// Migrated: the domain arrived (Started) or left (Stopped) through a migration, so the
	// host change is not a power change.
	Migrated bool
}

// State is the power state the event leaves the domain in on this host.
func (e Event) State() State {
	switch e.Type {
	case EventStarted, EventResumed:
		return StateRunning
	case EventSuspended:
		return StatePaused
	case EventStopped, EventShutdown:
		return StateOff
	case EventCrashed:
		return StateCrashed
	case EventPMSuspended:
		return StateSuspended
	}
	return StateUnknown
}

func (e Event) String() string {
	s := fmt.Sprintf("%s %s", e.Domain, e.Type)
	if e.Migrated {
		s += " (migration)"
	}
	return s
}

func eventFromLibvirt(m golibvirt.DomainEventLifecycleMsg) Event {
	e := Event{Domain: m.Dom.Name, UUID: formatUUID(m.Dom.UUID), Type: EventType(m.Event), Detail: m.Detail}
	switch golibvirt.DomainEventType(m.Event) {
	case golibvirt.DomainEventStarted:
		e.Migrated = m.Detail == int32(golibvirt.DomainEventStartedMigrated)
	case golibvirt.DomainEventStopped:
		e.Migrated = m.Detail == int32(golibvirt.DomainEventStoppedMigrated)
	}
	return e
}

// Events streams lifecycle events of every domain on the host until ctx ends or the
// connection closes; then the channel closes. The subscription itself lasts until the
// connection closes.
func (c *Conn) Events(ctx context.Context) (<-chan Event, error) {
	// go-libvirt's stream is never cancelled: on cancel it stops its queue before it
	// deregisters, and an event that arrives in between blocks the connection's reader for
	// good, so no RPC on it is ever answered again. On a closed connection the stream ends
	// cleanly, its queue removed before it is stopped.
	in, err := call(c, "subscribe to lifecycle events", func() (<-chan golibvirt.DomainEventLifecycleMsg, error) {
		return c.l.LifecycleEvents(context.Background())
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to lifecycle events on %s: %w", c.uri, c.wrap(err))
	}
	out := make(chan Event, 64)
	go func() {
		// Drained until the connection closes, so go-libvirt's stream goroutine can end.
		defer func() {
			for range in {
			}
		}()
		defer close(out)
		for {
			select {
			case m, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- eventFromLibvirt(m):
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func hostUUIDFromCapabilities(b []byte) (string, error) {
	var caps struct {
		Host struct {
			UUID string `xml:"uuid"`
		} `xml:"host"`
	}
	if err := xml.Unmarshal(b, &caps); err != nil {
		return "", fmt.Errorf("capabilities XML: %w", err)
	}
	if caps.Host.UUID == "" {
		return "", fmt.Errorf("capabilities XML has no host uuid")
	}
	return caps.Host.UUID, nil
}
