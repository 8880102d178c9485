package events

import (
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
