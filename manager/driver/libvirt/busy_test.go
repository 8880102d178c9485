package libvirt

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A connection busy with slow calls is not a hung daemon. libvirtd reads at most
// max_client_requests (5) calls of one connection at a time; with more calls than that
// waiting on a stalled guest, a probe sent on the same connection went unanswered, and the
// watchdog cut the connection, failing every call on it ("procedure interrupted") and
// reporting the host down: six VMs powered on at once on a loaded host did that.
func TestBusyConnectionIsNotCut(t *testing.T) {
	h := hosts(t).Hosts[1]
	c := dial(t, h.TCPURI())
	spec := tinyVM("busy")
	cleanupDomain(t, spec.UUID, c)
	if _, err := c.Define(spec); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(spec.UUID); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(h.Dir, "run", "qemu", spec.Name+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}

	down := make(chan error, 16)
	host, err := NewHost(HostConfig{
		URI:           h.TCPURI(),
		OnState:       func(up bool, err error) { down <- err },
		ProbeInterval: 50 * time.Millisecond,
		ProbeTimeout:  300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { host.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := host.WaitConnected(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	<-down // the up report
	hc, err := host.Conn()
	if err != nil {
		t.Fatal(err)
	}

	// A stopped QEMU answers no monitor command: the first reset waits on it, the others
	// on the domain's job, and the connection has more calls in progress than libvirtd reads.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			syscall.Kill(pid, syscall.SIGCONT)
			thawed = true
		}
	}
	t.Cleanup(thaw) // before the domain's cleanup
	const calls = 8
	errs := make(chan error, calls)
	for range calls {
		go func() { errs <- hc.Reset(spec.UUID) }()
	}
	select {
	case err := <-down:
		t.Fatalf("host reported down while its connection was busy: %v", err)
	case err := <-errs:
		t.Fatalf("a reset returned while the guest was stopped: %v", err)
	case <-time.After(5 * 300 * time.Millisecond):
	}
	thaw()
	for range calls {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("reset on a busy connection: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("resets still waiting 30s after the guest resumed\n%s", stacks())
		}
	}
	if !host.Up() {
		t.Fatal("host not up after the busy spell")
	}
}

// Heartbeats are timed by receipt, apart from events: an event handler that waits (a lookup
// on a connection busy starting domains) must not hold back the host's heartbeat, or the
// manager takes a busy host for a dead one and HA restarts its VMs elsewhere.
func TestHeartbeatNotBehindEvents(t *testing.T) {
	h := hosts(t).Hosts[0]
	c := dial(t, h.TCPURI())
	spec := tinyVM("beat")
	cleanupDomain(t, spec.UUID, c)

	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	var beats atomic.Int64
	host, err := NewHost(HostConfig{
		URI: h.TCPURI(),
		OnEvent: func(Event) {
			select {
			case blocked <- struct{}{}:
			default:
			}
			<-release
		},
		OnAlive:       func() { beats.Add(1) },
		ProbeInterval: 50 * time.Millisecond,
		ProbeTimeout:  time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { host.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	t.Cleanup(func() { close(release) }) // before the host stops
	if err := host.WaitConnected(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Define(spec); err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the defined domain")
	}
	before := beats.Load()
	time.Sleep(500 * time.Millisecond) // ten probe intervals
	if got := beats.Load() - before; got < 3 {
		t.Fatalf("%d heartbeats in 500ms while an event handler waited (probe every 50ms)", got)
	}
}
