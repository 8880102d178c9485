package events

import (
	"errors"
	"fmt"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

func ev(typ string, i int) *acliv1.Event {
	return &acliv1.Event{Type: typ, Message: fmt.Sprint(typ, i)}
}

func TestPublishListRetention(t *testing.T) {
	b := New(5, 0)
	for i := 1; i <= 8; i++ {
		typ := "vm"
		if i%2 == 0 {
			typ = "host"
		}
		if seq := b.Publish(ev(typ, i)); seq != uint64(i) {
			t.Fatalf("seq %d, want %d", seq, i)
		}
	}
	all := b.List("", 0)
	if len(all) != 5 || all[0].Seq != 4 || all[4].Seq != 8 {
		t.Fatalf("retained %d events from %d; want seq 4..8", len(all), all[0].Seq)
	}
	hosts := b.List("host", 2)
	if len(hosts) != 2 || hosts[0].Seq != 6 || hosts[1].Seq != 8 {
		t.Fatalf("List(host, 2) = %v", hosts)
	}
}

func TestSubscribeReplayThenLive(t *testing.T) {
	b := New(100, 0)
	for i := 1; i <= 4; i++ {
		b.Publish(ev("vm", i))
	}
	b.Publish(ev("host", 5))
	s := b.Subscribe("vm", 2)
	defer s.Close()
	b.Publish(ev("host", 6))
	b.Publish(ev("vm", 7))
	var got []uint64
	for i := 0; i < 3; i++ {
		got = append(got, (<-s.C()).Seq)
	}
	if fmt.Sprint(got) != "[3 4 7]" {
		t.Fatalf("got seqs %v, want [3 4 7]", got)
	}
}

func TestSlowSubscriberDropped(t *testing.T) {
	b := New(10, 0)
	s := b.Subscribe("", 0)
	for i := 0; i < subBuffer+1; i++ {
		b.Publish(ev("vm", i))
	}
	n := 0
	for range s.C() {
		n++
	}
	if !s.Lagged() || n != subBuffer {
		t.Fatalf("lagged=%v after %d events; want dropped after %d", s.Lagged(), n, subBuffer)
	}
	s.Close() // closing a dropped subscription is harmless
}

func TestRestoreContinuesNumbering(t *testing.T) {
	b := New(10, 0)
	b.Restore([]*acliv1.Event{{Seq: 41, Type: "vm"}, {Seq: 42, Type: "host"}})
	if seq := b.Publish(ev("vm", 0)); seq != 43 {
		t.Fatalf("seq after restore = %d, want 43", seq)
	}
	if got := b.Since(41); len(got) != 2 || got[0].Seq != 42 {
		t.Fatalf("Since(41) = %v", got)
	}
}

// Reserved numbers are recorded before use, a block at a time; a bus made
// after a crash from the recorded mark numbers past every event the lost
// bus published, persisted or not.
func TestReserveNumbersPastACrash(t *testing.T) {
	var mark uint64
	writes := 0
	b := New(10, 0)
	b.Reserve(4, func(upTo uint64) error { mark = upTo; writes++; return nil })
	for range 6 {
		b.Publish(&acliv1.Event{Type: "vm"})
	}
	if mark != 8 || writes != 2 {
		t.Fatalf("after 6 events: reserved up to %d in %d writes, want 8 in 2", mark, writes)
	}
	after := New(10, mark) // restarted: none of the 6 was persisted
	if seq := after.Publish(&acliv1.Event{Type: "vm"}); seq != 9 {
		t.Fatalf("first event after the crash: %d, want 9", seq)
	}
	// A failed reservation publishes anyway and is tried again.
	fail := New(10, 0)
	tries := 0
	fail.Reserve(4, func(uint64) error { tries++; return errors.New("store down") })
	fail.Publish(&acliv1.Event{})
	fail.Publish(&acliv1.Event{})
	if tries != 2 || fail.Last() != 2 {
		t.Fatalf("failed reservations: %d tries, last %d", tries, fail.Last())
	}
}
