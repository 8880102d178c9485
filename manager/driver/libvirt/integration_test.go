package libvirt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
	"github.com/google/uuid"
)

// One set of real libvirtd hosts serves every integration test: starting them is the
// expensive part, and the tests clean up their own domains.
var (
	clusterOnce sync.Once
	cluster     *libvirtharness.Cluster
	clusterErr  error
	suiteStart  = time.Now()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop libvirt hosts:", err)
			code = 1
		}
		fmt.Printf("libvirt suite: wall time %v, CPU time of the daemons and their QEMUs %v\n",
			time.Since(suiteStart).Round(time.Millisecond), cluster.CPUTime().Round(time.Millisecond))
	}
	os.Exit(code)
}

// hosts returns the shared 3-host cluster, skipping when the harness cannot run here.
func hosts(t testing.TB) *libvirtharness.Cluster {
	t.Helper()
	libvirtharness.Require(t)
	clusterOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cluster, clusterErr = libvirtharness.Start(ctx, libvirtharness.Options{Hosts: 3})
		if clusterErr == nil {
			for _, h := range cluster.Hosts {
				fmt.Printf("libvirt host %s on %s up in %v\n", h.Name, h.Addr, h.StartTime.Round(time.Millisecond))
			}
		}
	})
	if clusterErr != nil {
		t.Fatalf("start libvirt hosts: %v", clusterErr)
	}
	return cluster
}

func dial(t testing.TB, uri string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, uri, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tinyVM is the smallest useful guest: 64 MiB, 1 vCPU, no disk, no NIC (SeaBIOS idles).
func tinyVM(name string) DomainSpec {
	return DomainSpec{Name: name, UUID: uuid.NewString(), VCPUs: 1, MemoryMiB: 64}
}

// cleanupDomain removes a test domain from whichever host holds it.
func cleanupDomain(t testing.TB, id string, conns ...*Conn) {
	t.Cleanup(func() {
		for _, c := range conns {
			if d, err := c.Lookup(id); err == nil {
				if d.State.Active() {
					c.Destroy(id)
				}
				c.Undefine(id)
			}
		}
	})
}

func waitState(t testing.TB, c *Conn, id string, want State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := c.Lookup(id)
		if err == nil && d.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s: state %v (%v), want %v", id, c.URI(), d.State, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextEvent waits for an event about one domain, skipping others.
func nextEvent(t testing.TB, ch <-chan Event, id string, want EventType) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("event stream closed waiting for %s %v", id, want)
			}
			if e.UUID == id && e.Type == want {
				return e
			}
		case <-timeout:
			t.Fatalf("no %v event for %s", want, id)
		}
	}
}

func TestLifecycle(t *testing.T) {
	h := hosts(t).Hosts[0]
	c := dial(t, h.TCPURI())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}

	spec := tinyVM("lifecycle")
	cleanupDomain(t, spec.UUID, c)
	begin := time.Now()
	d, err := c.Define(spec)
	if err != nil {
		t.Fatal(err)
	}
	if d.UUID != spec.UUID || d.Name != spec.Name {
		t.Fatalf("defined %+v", d)
	}
	nextEvent(t, events, spec.UUID, EventDefined)
	if err := c.Start(spec.Name); err != nil {
		t.Fatal(err)
	}
	t.Logf("define+start: %v", time.Since(begin))
	if e := nextEvent(t, events, spec.UUID, EventStarted); e.Migrated {
		t.Errorf("boot reported as migration: %+v", e)
	}
	waitState(t, c, spec.UUID, StateRunning)

	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range list {
		if d.UUID == spec.UUID {
			found = d.State == StateRunning && d.Persistent
		}
	}
	if !found {
		t.Fatalf("list %+v lacks running persistent %s", list, spec.UUID)
	}

	if err := c.Reset(spec.UUID); err != nil {
		t.Fatal(err)
	}
	if err := c.Reboot(spec.UUID); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, spec.UUID, StateRunning)

	// The BIOS-only guest ignores the ACPI power button: the bounded wait must say so and
	// leave it running.
	err = c.Shutdown(context.Background(), spec.UUID, 300*time.Millisecond)
	if !errors.Is(err, ErrShutdownTimeout) {
		t.Fatalf("shutdown of a guest without an OS: %v, want ErrShutdownTimeout", err)
	}
	waitState(t, c, spec.UUID, StateRunning)

	if err := c.Destroy(spec.UUID); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, events, spec.UUID, EventStopped)
	waitState(t, c, spec.UUID, StateOff)
	// Shutting down a domain that is already off is refused by libvirt, not hung on.
	if err := c.Shutdown(context.Background(), spec.UUID, time.Second); err == nil {
		t.Error("shutdown of an off domain succeeded")
	}
	if err := c.Undefine(spec.UUID); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, events, spec.UUID, EventUndefined)
	if _, err := c.Lookup(spec.UUID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup after undefine: %v, want ErrNotFound", err)
	}
	if err := c.Start("no-such-vm"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("start of a missing domain: %v", err)
	}
}

// Destroy is idempotent: a domain that stopped after the caller saw it
// running (libvirt answers "domain is not running") counts as destroyed, so
// a power-off or a fence racing the guest's own stop does not fail.
func TestDestroyOfStoppedDomainSucceeds(t *testing.T) {
	h := hosts(t).Hosts[0]
	c := dial(t, h.TCPURI())
	spec := tinyVM("destroy-twice")
	cleanupDomain(t, spec.UUID, c)
	if _, err := c.Define(spec); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(spec.UUID); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, spec.UUID, StateRunning)
	if err := c.Destroy(spec.UUID); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, spec.UUID, StateOff)
	if err := c.Destroy(spec.UUID); err != nil {
		t.Fatalf("destroy of a domain that already stopped: %v, want success", err)
	}
	if err := c.Undefine(spec.UUID); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(spec.UUID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("destroy of an undefined domain: %v, want ErrNotFound", err)
	}
}

func TestHostInfoOverUnixSocket(t *testing.T) {
	h := hosts(t).Hosts[1]
	c := dial(t, h.UnixURI())
	hi, err := c.HostInfo()
	if err != nil {
		t.Fatal(err)
	}
	if hi.UUID != h.UUID || hi.CPUs < 1 || hi.MemoryMiB < 64 || hi.LibVersion == "" {
		t.Fatalf("host info %+v, want uuid %s", hi, h.UUID)
	}
	t.Logf("%s: %+v", h.Name, hi)
}

// migrate moves a domain and checks it is running on dest and gone from src.
func migrate(t testing.TB, src, dst *Conn, dstURI, id string) (MigrationResult, []MigrationProgress) {
	t.Helper()
	var samples []MigrationProgress
	res, err := src.Migrate(context.Background(), id, MigrateOptions{
		DestURI:      dstURI,
		PollInterval: 20 * time.Millisecond,
		Dest:         dst,
		Progress:     func(p MigrationProgress) { samples = append(samples, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := dst.Lookup(id)
	if err != nil || d.State != StateRunning || !d.Persistent {
		t.Fatalf("after migration on %s: %+v %v", dst.URI(), d, err)
	}
	if _, err := src.Lookup(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("source still has %s after migration (undefine-source): %v", id, err)
	}
	return res, samples
}

func TestLiveMigrationBothWays(t *testing.T) {
	c := hosts(t)
	a, b := c.Hosts[0], c.Hosts[1]
	ca, cb := dial(t, a.TCPURI()), dial(t, b.TCPURI())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evB, err := cb.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec := tinyVM("migrant")
	cleanupDomain(t, spec.UUID, ca, cb)
	if _, err := ca.Define(spec); err != nil {
		t.Fatal(err)
	}
	if err := ca.Start(spec.UUID); err != nil {
		t.Fatal(err)
	}

	res, samples := migrate(t, ca, cb, b.TCPURI(), spec.UUID)
	if e := nextEvent(t, evB, spec.UUID, EventStarted); !e.Migrated {
		t.Errorf("arrival on %s not flagged as a migration: %+v", b.Name, e)
	}
	t.Logf("%s -> %s: %v wall, %v downtime, %d iterations, %d bytes, %d samples", a.Name, b.Name, res.Elapsed, res.Downtime, res.Iterations, res.Bytes, len(samples))
	checkProgress(t, res, samples)

	res, samples = migrate(t, cb, ca, a.TCPURI(), spec.UUID)
	t.Logf("%s -> %s: %v wall, %v downtime, %d iterations, %d bytes, %d samples", b.Name, a.Name, res.Elapsed, res.Downtime, res.Iterations, res.Bytes, len(samples))
	checkProgress(t, res, samples)
}

func checkProgress(t testing.TB, res MigrationResult, samples []MigrationProgress) {
	t.Helper()
	if len(samples) == 0 {
		t.Fatal("no progress reported")
	}
	final := samples[len(samples)-1]
	if !final.Completed || final.Percent != 100 || final.Iteration < 1 || final.DataProcessed == 0 {
		t.Errorf("final progress %+v", final)
	}
	if res.Downtime <= 0 || res.Downtime > 5*time.Second {
		t.Errorf("downtime %v not measured", res.Downtime)
	}
}

func TestMigrationAbortedAtDeadlineStaysOnSource(t *testing.T) {
	c := hosts(t)
	a, b := c.Hosts[0], c.Hosts[1]
	ca, cb := dial(t, a.TCPURI()), dial(t, b.TCPURI())
	spec := tinyVM("stayer")
	cleanupDomain(t, spec.UUID, ca, cb)
	if _, err := ca.Define(spec); err != nil {
		t.Fatal(err)
	}
	if err := ca.Start(spec.UUID); err != nil {
		t.Fatal(err)
	}
	var samples int
	// 8 Mb/s is libvirt's floor of 1 MiB/s: far too slow to move 64 MiB before the deadline.
	res, err := ca.Migrate(context.Background(), spec.UUID, MigrateOptions{
		DestURI:       b.TCPURI(),
		BandwidthMbps: 8,
		Deadline:      100 * time.Millisecond,
		PollInterval:  50 * time.Millisecond,
		Progress:      func(MigrationProgress) { samples++ },
	})
	if !errors.Is(err, ErrMigrationAborted) {
		t.Fatalf("throttled migration past its deadline: %v, want ErrMigrationAborted", err)
	}
	t.Logf("aborted after %v with %d progress samples: %v", res.Elapsed, samples, err)
	waitState(t, ca, spec.UUID, StateRunning)
	if d, err := cb.Lookup(spec.UUID); err == nil {
		t.Fatalf("destination kept the domain after the abort: %+v", d)
	}

	// Cancelled mid-transfer (the context, as when the task is cancelled): QEMU's stream is
	// cut and the domain stays too.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var during MigrationProgress
	_, err = ca.Migrate(ctx, spec.UUID, MigrateOptions{
		DestURI:       b.TCPURI(),
		BandwidthMbps: 8,
		PollInterval:  20 * time.Millisecond,
		Progress: func(p MigrationProgress) {
			if p.DataProcessed > 0 && p.DataRemaining > 0 && during.DataTotal == 0 {
				during = p
				cancel()
			}
		},
	})
	if !errors.Is(err, ErrMigrationAborted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("migration cancelled mid-transfer: %v, want ErrMigrationAborted and context.Canceled", err)
	}
	t.Logf("cancelled at %d%% (%d of %d bytes, iteration %d)", during.Percent, during.DataProcessed, during.DataTotal, during.Iteration)
	waitState(t, ca, spec.UUID, StateRunning)
	if _, err := cb.Lookup(spec.UUID); err == nil {
		t.Fatal("destination kept the domain after the cancel")
	}

	// The domain is not stuck in a job: it still migrates afterwards.
	migrate(t, ca, cb, b.TCPURI(), spec.UUID)
}

func TestKilledDaemonIsReportedDownThenUp(t *testing.T) {
	h := hosts(t).Hosts[2]
	type change struct {
		up  bool
		err error
		at  time.Time
	}
	changes := make(chan change, 16)
	host, err := NewHost(HostConfig{
		URI:           h.TCPURI(),
		OnState:       func(up bool, err error) { changes <- change{up, err, time.Now()} },
		MinBackoff:    50 * time.Millisecond,
		MaxBackoff:    200 * time.Millisecond,
		ProbeInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { host.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	expect := func(up bool) change {
		t.Helper()
		select {
		case c := <-changes:
			if c.up != up {
				t.Fatalf("host state up=%v (%v), want up=%v", c.up, c.err, up)
			}
			return c
		case <-time.After(15 * time.Second):
			t.Fatalf("no host state change to up=%v", up)
		}
		return change{}
	}
	expect(true)
	if _, err := host.Conn(); err != nil {
		t.Fatal(err)
	}

	killed := time.Now()
	if err := h.Kill(); err != nil {
		t.Fatal(err)
	}
	down := expect(false)
	t.Logf("daemon kill detected in %v: %v", down.at.Sub(killed), down.err)
	if !errors.Is(down.err, ErrHostDown) {
		t.Errorf("down reason %v does not wrap ErrHostDown", down.err)
	}
	if _, err := host.Conn(); !errors.Is(err, ErrHostDown) {
		t.Errorf("Conn while down: %v", err)
	}

	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := h.Start(sctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	up := expect(true)
	t.Logf("reconnected %v after the daemon answered again", up.at.Sub(restarted))
	if c, err := host.Conn(); err != nil {
		t.Fatal(err)
	} else if _, err := c.List(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLiveMigration64MiB moves one 64 MiB guest back and forth between two hosts and
// reports wall time and guest downtime per migration.
func BenchmarkLiveMigration64MiB(b *testing.B) {
	c := hosts(b)
	x, y := c.Hosts[0], c.Hosts[1]
	cx, cy := dial(b, x.TCPURI()), dial(b, y.TCPURI())
	spec := tinyVM("bench")
	cleanupDomain(b, spec.UUID, cx, cy)
	if _, err := cx.Define(spec); err != nil {
		b.Fatal(err)
	}
	if err := cx.Start(spec.UUID); err != nil {
		b.Fatal(err)
	}
	src, dst, dstURI, back := cx, cy, y.TCPURI(), x.TCPURI()
	var downtime time.Duration
	for b.Loop() {
		res, err := src.Migrate(context.Background(), spec.UUID, MigrateOptions{DestURI: dstURI, Dest: dst})
		if err != nil {
			b.Fatal(err)
		}
		downtime += res.Downtime
		src, dst, dstURI, back = dst, src, back, dstURI
	}
	b.ReportMetric(float64(downtime.Microseconds())/1000/float64(b.N), "downtime-ms/op")
}

// A frozen daemon keeps its socket open but stops answering: the probe must notice, and the
// reconnect attempts must not hang on the handshake.
func TestFrozenDaemonIsReportedDownThenUp(t *testing.T) {
	h := hosts(t).Hosts[2]
	changes := make(chan bool, 16)
	host, err := NewHost(HostConfig{
		URI:           h.TCPURI(),
		Dial:          DialOptions{Timeout: 300 * time.Millisecond},
		OnState:       func(up bool, err error) { changes <- up },
		MinBackoff:    50 * time.Millisecond,
		MaxBackoff:    200 * time.Millisecond,
		ProbeInterval: 100 * time.Millisecond,
		ProbeTimeout:  300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { host.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	expect := func(up bool) {
		t.Helper()
		select {
		case got := <-changes:
			if got != up {
				t.Fatalf("host up=%v, want %v", got, up)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no change to up=%v", up)
		}
	}
	expect(true)
	pid := h.DaemonPID()
	if pid <= 0 {
		t.Fatal("no daemon pid")
	}
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
	t.Cleanup(thaw)
	frozen := time.Now()
	expect(false)
	t.Logf("frozen daemon detected in %v", time.Since(frozen))
	// Stay frozen across a few reconnect attempts: each must give up, not hang.
	time.Sleep(time.Second)
	if host.Up() {
		t.Fatal("host reported up while frozen")
	}
	thaw()
	expect(true)
}
