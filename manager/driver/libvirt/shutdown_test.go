package libvirt

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/ssh"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
)

// churn defines and undefines domains on c from n goroutines until the returned stop is
// called, so lifecycle events keep arriving on every connection subscribed to the host.
//
// c itself subscribes too, for as long as it is open: libvirtd 9.0 can lose its event timer
// when its last event callback goes while an event is being queued, and then delivers no
// event to anyone until the count drops to zero again. The tests here subscribe and go
// away hundreds of times with events in flight, so they must never be the only subscriber.
func churn(t testing.TB, c *Conn, n int) (stop func()) {
	t.Helper()
	if _, err := c.Events(context.Background()); err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		spec := tinyVM("churn-" + uuid.NewString()[:8])
		cleanupDomain(t, spec.UUID, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-quit:
					return
				default:
				}
				if _, err := c.Define(spec); err != nil {
					t.Errorf("churn define: %v", err)
					return
				}
				if err := c.Undefine(spec.UUID); err != nil {
					t.Errorf("churn undefine: %v", err)
					return
				}
			}
		}()
	}
	return func() { close(quit); wg.Wait() }
}

// Ending an event stream while events arrive must leave the connection usable: go-libvirt
// stops its stream queue before it deregisters, and an event routed in between used to block
// its reader for good, so every later RPC on the connection hung.
func TestEventsEndWhileEventsArrive(t *testing.T) {
	h := hosts(t).Hosts[0]
	src := dial(t, h.TCPURI())
	defer churn(t, src, 4)()
	for i := range 50 {
		c := dial(t, h.TCPURI())
		ctx, cancel := context.WithCancel(context.Background())
		events, err := c.Events(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Take a few events, then stop listening while more are on the way.
		for range 1 + i%3 {
			select {
			case <-events:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: no event while domains churn\n%s", i, stacks())
			}
		}
		cancel()
		done := make(chan error, 1)
		go func() {
			// Long enough for go-libvirt's deregistration to be under way.
			time.Sleep(time.Duration(i%4) * time.Millisecond)
			_, err := c.List()
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: list after the event stream ended: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: an RPC after the event stream ended hangs\n%s", i, stacks())
		}
		closed := make(chan struct{})
		go func() { c.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Close hangs\n%s", i, stacks())
		}
		for range events { // the stream ends with the connection
		}
	}
}

// Host.Run returns promptly when its context ends, whatever its callbacks are doing: here
// each event makes an RPC on the host's own connection (as the driver's reconcile does)
// while events keep arriving.
func TestHostRunStopsWhileEventsArrive(t *testing.T) {
	h := hosts(t).Hosts[1]
	src := dial(t, h.TCPURI())
	defer churn(t, src, 4)()
	for i := range 20 {
		var host *Host
		got := make(chan struct{}, 1)
		host, err := NewHost(HostConfig{
			URI: h.TCPURI(),
			OnEvent: func(ev Event) {
				if c, err := host.Conn(); err == nil {
					c.Lookup(ev.UUID)
				}
				select {
				case got <- struct{}{}:
				default:
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { host.Run(ctx); close(done) }()
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("no event reached the host while domains churn")
		}
		time.Sleep(time.Duration(i) * time.Millisecond)
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Host.Run still running 5s after its context ended\n%s", i, stacks())
		}
	}
}

// A frozen daemon never answers: Host.Run still returns promptly when its context ends,
// even with a callback blocked in an RPC to it.
func TestHostRunStopsWithFrozenDaemon(t *testing.T) {
	h := hosts(t).Hosts[2]
	pid := h.DaemonPID()
	if pid <= 0 {
		t.Fatal("no daemon pid")
	}
	entered := make(chan struct{})
	var once sync.Once
	var host *Host
	host, err := NewHost(HostConfig{
		URI: h.TCPURI(),
		OnEvent: func(ev Event) {
			c, err := host.Conn()
			if err != nil {
				return
			}
			once.Do(func() {
				syscall.Kill(pid, syscall.SIGSTOP)
				close(entered)
			})
			c.Lookup(ev.UUID) // the daemon is frozen: no answer
		},
		// No probe gets in the way: only the end of the context stops the callback.
		ProbeInterval: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { host.Run(ctx); close(done) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(pid, syscall.SIGCONT) // a failed test must not hang the package
			<-done
		}
	}()
	if err := host.WaitConnected(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	c := dial(t, h.TCPURI())
	spec := tinyVM("frozen")
	cleanupDomain(t, spec.UUID, c)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) }) // before the domain's cleanup
	go c.Define(spec)                                        // its reply may come only after the thaw
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no event reached the host")
	}
	begin := time.Now()
	cancel()
	select {
	case <-done:
		t.Logf("Host.Run returned %v after its context ended, its daemon frozen", time.Since(begin).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatalf("Host.Run still running 5s after its context ended, with its daemon frozen\n%s", stacks())
	}
}

// goroutinesBut counts the goroutines but those whose stack mentions fn and those they
// started: churn's workers come and go, and so does the goroutine of each call they make.
func goroutinesBut(fn string) int {
	blocks := strings.Split(stacks(), "\n\n")
	id := func(b string) string { return strings.Fields(b)[1] }
	skip := map[string]bool{}
	for _, b := range blocks {
		if strings.Contains(b, fn) {
			skip[id(b)] = true
		}
	}
	n := 0
	for _, b := range blocks {
		var parent string
		if i := strings.LastIndex(b, "created by "); i >= 0 {
			_, parent, _ = strings.Cut(b[i:], " in goroutine ")
			parent, _, _ = strings.Cut(parent, "\n")
		}
		if !skip[id(b)] && !skip[parent] {
			n++
		}
	}
	return n
}

// stacks is every goroutine's stack, for the message of a test that found something hung.
func stacks() string {
	buf := make([]byte, 4<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// An SSH server that accepts and never speaks (a frozen sshd): the dial gives up after its
// timeout rather than waiting for the handshake forever.
func TestSSHDialToSilentServerTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	cfg := &ssh.ClientConfig{User: "root", HostKeyCallback: ssh.InsecureIgnoreHostKey()}
	uri := "qemu+ssh://root@" + l.Addr().String() + "/system"
	begin := time.Now()
	done := make(chan error, 1)
	go func() {
		// A context with no deadline: only the dial timeout can end the wait.
		_, err := Dial(context.Background(), uri, DialOptions{Timeout: 200 * time.Millisecond, SSHConfig: cfg})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("dial to a silent SSH server succeeded")
		}
		t.Logf("gave up after %v: %v", time.Since(begin).Round(time.Millisecond), err)
	case <-time.After(10 * time.Second):
		t.Fatal("dial to a silent SSH server still waiting after 10s")
	}
}

// The driver lets a host go (host.remove) and closes (clusterd stopping) promptly while its
// hosts send events, one of them frozen, and leaves no goroutine behind.
func TestDriverLeaveAndCloseWhileEventsArrive(t *testing.T) {
	c := hosts(t)
	a, b := c.Hosts[0], c.Hosts[1]
	src := dial(t, a.TCPURI())
	defer churn(t, src, 4)()
	before := goroutinesBut("libvirt.churn")

	d := NewDriver(Config{HeartbeatInterval: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	events, err := d.Start(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for range events {
		}
	}()
	join := func(h *libvirtharness.Host) string {
		t.Helper()
		joined, err := d.JoinHost(ctxTimeout(t, 10*time.Second), &acliv1.Host{Name: h.Name, HypervisorIp: h.Addr, LibvirtUri: h.TCPURI()})
		if err != nil {
			t.Fatal(err)
		}
		return joined.Uuid
	}
	bounded := func(what string, f func() error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still running after 5s\n%s", what, stacks())
		}
	}
	join(b)
	for i := range 10 {
		id := join(a)
		time.Sleep(time.Duration(5*i) * time.Millisecond) // events are being observed
		bounded("LeaveHost", func() error { return d.LeaveHost(id) })
	}
	join(a)
	pid := b.DaemonPID()
	if pid <= 0 {
		t.Fatal("no daemon pid")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thaw := func() { syscall.Kill(pid, syscall.SIGCONT) }
	defer thaw()
	bounded("Close", d.Close)
	<-consumed
	thaw()
	// go-libvirt's goroutines end with their connections, some after a short cleanup.
	deadline := time.Now().Add(10 * time.Second)
	for goroutinesBut("libvirt.churn") > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before:\n%s", goroutinesBut("libvirt.churn"), before, stacks())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
