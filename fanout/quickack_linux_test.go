package fanout

import (
	"net"
	"syscall"
	"testing"
)

func TestQuickAckIsSetAfterEveryRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("a"))
		c.Write([]byte("b"))
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := quickAck(raw)
	q, ok := c.(*quickAckConn)
	if !ok {
		t.Fatalf("TCP connection not wrapped: %T", c)
	}
	quick := func() int {
		v := -1
		q.rc.Control(func(fd uintptr) { v, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK) })
		return v
	}
	buf := make([]byte, 1)
	for range 2 {
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		if v := quick(); v != 1 {
			t.Fatalf("TCP_QUICKACK = %d after a read, want 1", v)
		}
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if quickAck(a) != a {
		t.Error("a non-TCP connection must pass through unchanged")
	}
}
