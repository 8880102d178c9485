package libvirt

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// fakeAddr is this package's loopback address for fake daemons.
const fakeAddr = "127.50.0.1"

// within runs f and fails the test when it has not returned after d.
func within[T any](t *testing.T, d time.Duration, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(d):
		t.Fatalf("%s still waiting after %v\n%s", what, d, stacks())
		panic("unreachable")
	}
}

// A daemon that answers the handshake and then freezes: the dial gives up within its
// deadline. The first request after the handshake used to wait for ever.
func TestDialGivesUpOnDaemonFrozenAfterHandshake(t *testing.T) {
	f := newFakeDaemon(t, fakeAddr)
	f.freeze(procConnectGetLibVersion)
	begin := time.Now()
	err := within(t, 10*time.Second, "dial", func() error {
		c, err := Dial(context.Background(), f.URI(), DialOptions{Timeout: 200 * time.Millisecond})
		if err == nil {
			c.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), f.addr) || !strings.Contains(err.Error(), "no answer within 400ms") {
		t.Fatalf("dial to a daemon frozen after the handshake: %v; want no answer within 400ms, naming %s", err, f.addr)
	}
	t.Logf("gave up after %v: %v", time.Since(begin).Round(time.Millisecond), err)
}

// A call libvirtd takes and never answers (its worker waiting on a stalled QEMU, the
// daemon otherwise alive) fails within the call timeout, naming the daemon.
func TestUnansweredCallTimesOut(t *testing.T) {
	f := newFakeDaemon(t, fakeAddr)
	c, err := Dial(ctxTimeout(t, 10*time.Second), f.URI(), DialOptions{CallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.freeze(procDomainCreateWithFlags)
	begin := time.Now()
	err = within(t, 10*time.Second, "start", func() error { return c.Start(f.domUUID.String()) })
	took := time.Since(begin)
	want := "libvirtd at " + f.URI() + " did not answer start web within 300ms"
	if !errors.Is(err, ErrTimeout) || err.Error() != want {
		t.Fatalf("start with no answer: %v; want %q", err, want)
	}
	t.Logf("start returned after %v: %v", took.Round(time.Millisecond), err)
	// The connection still serves other calls.
	if _, err := c.Lookup(f.domName); err != nil {
		t.Fatalf("lookup after the timed-out start: %v", err)
	}
}

// A VM whose start libvirtd never finishes: PowerOn fails within the call timeout naming
// the host, and destroys and undefines what the host may have half-started, so the failed
// task leaves no guest behind.
func TestPowerOnStalledStartFailsCleanly(t *testing.T) {
	f := newFakeDaemon(t, fakeAddr)
	d := NewDriver(Config{
		Dial:              DialOptions{CallTimeout: 300 * time.Millisecond},
		HeartbeatInterval: 50 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	events, err := d.Start(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range events {
		}
	}()
	defer d.Close()
	host, err := d.JoinHost(ctxTimeout(t, 10*time.Second), &acliv1.Host{Name: "h1", HypervisorIp: fakeAddr, LibvirtUri: f.URI()})
	if err != nil {
		t.Fatal(err)
	}
	f.freeze(procDomainCreateWithFlags)
	vm := &acliv1.Vm{Name: f.domName, Uuid: f.domUUID.String(), MemoryBytes: 64 << 20, NumVcpus: 1}
	begin := time.Now()
	err = within(t, 10*time.Second, "PowerOn", func() error { return d.PowerOn(context.Background(), host, vm) })
	took := time.Since(begin)
	want := "host h1: libvirtd at " + f.URI() + " did not answer start web within 300ms"
	if !errors.Is(err, ErrTimeout) || err.Error() != want {
		t.Fatalf("PowerOn with a stalled start: %v; want %q", err, want)
	}
	if f.called(procDomainDestroyFlags) != 1 || f.called(procDomainUndefineFlags) != 1 {
		t.Fatalf("after the timed-out start: %d destroys and %d undefines; want one of each",
			f.called(procDomainDestroyFlags), f.called(procDomainUndefineFlags))
	}
	t.Logf("PowerOn failed after %v: %v", took.Round(time.Millisecond), err)
}

// A probe whose window passed while this process did not run (stopped here; descheduled on
// a loaded machine) proves nothing of the host: it is given another window, and the
// answer, late only because the process was away, keeps the host up. The probe timed
// out at once on resuming and cut the connection, failing the calls on it ("procedure
// interrupted while awaiting response").
func TestProbeOutlivesOwnStall(t *testing.T) {
	f := newFakeDaemon(t, fakeAddr)
	var downs atomic.Int32
	h, err := NewHost(HostConfig{URI: f.URI(), ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 400 * time.Millisecond,
		OnState: func(up bool, err error) {
			if !up {
				downs.Add(1)
				t.Logf("host down: %v", err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); h.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	if err := h.WaitConnected(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	// A probe is in flight, its answer held, when the process stops for three windows.
	n := f.called(procConnectGetLibVersion)
	f.hold(procConnectGetLibVersion)
	within(t, 10*time.Second, "a probe", func() bool {
		for f.called(procConnectGetLibVersion) == n {
			time.Sleep(time.Millisecond)
		}
		return true
	})
	pid := strconv.Itoa(os.Getpid())
	if out, err := exec.Command("sh", "-c", "kill -STOP "+pid+"; sleep 1.2; kill -CONT "+pid).CombinedOutput(); err != nil {
		t.Fatalf("stopping the test process: %v %s", err, out)
	}
	f.release()
	time.Sleep(500 * time.Millisecond) // more probes, answered
	if d := downs.Load(); d != 0 || !h.Up() {
		t.Fatalf("host cut after this process stalled: %d down reports, up %v", d, h.Up())
	}
	// A probe that goes unanswered with the process running still cuts the host.
	f.freeze(procConnectGetLibVersion)
	within(t, 10*time.Second, "the host cut", func() bool {
		for h.Up() {
			time.Sleep(10 * time.Millisecond)
		}
		return true
	})
}
