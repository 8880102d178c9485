package libvirtharness

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

func connect(t *testing.T, addr string) *golibvirt.Libvirt {
	t.Helper()
	l := golibvirt.NewWithDialer(dialers.NewRemote(addr, dialers.WithRemoteTimeout(2*time.Second)))
	if err := l.ConnectToURI(golibvirt.QEMUSystem); err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Disconnect() })
	return l
}

// Two hosts come up isolated from each other: distinct addresses, host UUIDs and sockets, and
// a host killed and restarted answers again with the same identity.
func TestHostsAreIsolatedAndRestartable(t *testing.T) {
	c := StartT(t, 2)
	for _, h := range c.Hosts {
		t.Logf("%s on %s started in %v (uuid %s, migration ports %d-%d)", h.Name, h.Addr, h.StartTime, h.UUID, h.MigrationPorts[0], h.MigrationPorts[1])
	}
	a, b := c.Hosts[0], c.Hosts[1]
	if a.Addr == b.Addr || a.UUID == b.UUID || a.Socket == b.Socket {
		t.Fatalf("hosts share identity: %+v %+v", a, b)
	}
	for _, h := range c.Hosts {
		caps, err := connect(t, h.Addr).Capabilities()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(caps), "<uuid>"+h.UUID+"</uuid>") {
			t.Errorf("%s capabilities do not carry its host_uuid %s", h.Name, h.UUID)
		}
	}

	// Reachable over the unix socket from outside the daemon's mount namespace.
	l := golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(a.Socket)))
	if err := l.ConnectToURI(golibvirt.QEMUSystem); err != nil {
		t.Fatalf("unix socket %s: %v", a.Socket, err)
	}
	l.Disconnect()

	pid := a.DaemonPID()
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	if a.Running() {
		t.Fatal("host still running after Kill")
	}
	if err := a.ping(time.Second); err == nil {
		t.Fatal("killed host still answers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if a.DaemonPID() == pid {
		t.Fatal("restart kept the old daemon")
	}
	t.Logf("%s restarted in %v", a.Name, a.StartTime)
}

func TestClaimAddrSkipsHeldAddresses(t *testing.T) {
	Require(t)
	a1, l1, err := claimAddr()
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	a2, l2, err := claimAddr()
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if a1 == a2 {
		t.Fatalf("two claims got the same address %s", a1)
	}
}

// BenchmarkHostStart measures a daemon's start until it answers an RPC.
func BenchmarkHostStart(b *testing.B) {
	Require(b)
	c, err := Start(context.Background(), Options{Hosts: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	h := c.Hosts[0]
	var total time.Duration
	for b.Loop() {
		if err := h.Kill(); err != nil {
			b.Fatal(err)
		}
		if err := h.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		total += h.StartTime
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/start")
}

// startIdleDomain starts a diskless domain on h (its BIOS finds nothing to
// boot and waits) and returns its QEMU's PID.
func startIdleDomain(t *testing.T, h *Host) int {
	t.Helper()
	l := golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(h.Socket), dialers.WithLocalTimeout(2*time.Second)))
	if err := l.ConnectToURI(golibvirt.QEMUSystem); err != nil {
		t.Fatalf("connect %s: %v", h.Socket, err)
	}
	defer l.Disconnect()
	const xml = `<domain type='qemu'><name>idle</name><memory unit='MiB'>32</memory>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>`
	d, err := l.DomainDefineXML(xml)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DomainCreate(d); err != nil {
		t.Fatal(err)
	}
	pids := qemuPIDs(h)
	if len(pids) != 1 {
		t.Fatalf("QEMU pids from %s's run dir: %v, want one", h.Name, pids)
	}
	return pids[0]
}

// A host whose libvirtd was killed leaves its QEMU running, as a real host
// would; Stop still stops that QEMU, by the pid file in the host's run dir.
func TestStopKillsTheQEMUsOfAKilledDaemon(t *testing.T) {
	Require(t)
	c, err := Start(context.Background(), Options{Hosts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	h := c.Hosts[0]
	pid := startIdleDomain(t, h)
	if err := h.Kill(); err != nil {
		t.Fatal(err)
	}
	if !isQEMU(pid) {
		t.Fatalf("QEMU %d died with its daemon", pid)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if isQEMU(pid) {
		t.Fatalf("QEMU %d still runs after Stop", pid)
	}
}

// A cluster whose owner died without Stop (a test binary killed by its
// timeout: its flock goes with it) is reaped by the next ReapOrphans, its
// killed daemon's QEMU included; while its owner lives it is left alone.
func TestReapOrphansStopsADeadOwnersQEMUs(t *testing.T) {
	Require(t)
	c, err := Start(context.Background(), Options{Hosts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	h := c.Hosts[0]
	pid := startIdleDomain(t, h)
	daemon := h.DaemonPID()

	if _, err := ReapOrphans(); err != nil {
		t.Logf("reaping other clusters: %v", err)
	}
	if !isQEMU(pid) || !isLibvirtd(daemon) {
		t.Fatalf("a live owner's cluster was reaped (QEMU %d running %v, libvirtd %d running %v)",
			pid, isQEMU(pid), daemon, isLibvirtd(daemon))
	}

	if err := h.Kill(); err != nil {
		t.Fatal(err)
	}
	c.owner.Close() // what the owner's death does to its flock
	c.owner = nil
	stopped, err := ReapOrphans()
	if err != nil {
		t.Fatal(err)
	}
	if isQEMU(pid) {
		t.Fatalf("QEMU %d still runs after ReapOrphans (stopped %v)", pid, stopped)
	}
	if !slices.Contains(stopped, pid) {
		t.Errorf("ReapOrphans stopped %v, not QEMU %d", stopped, pid)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("the orphan's state dir %s is still there: %v", c.Dir, err)
	}
}

// An orphan's stale pid file naming a PID a live cluster's libvirtd has
// since taken (PIDs wrap) does not make ReapOrphans kill that daemon.
func TestReapOrphansSparesAReusedPID(t *testing.T) {
	Require(t)
	c, err := Start(context.Background(), Options{Hosts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	daemon := c.Hosts[0].DaemonPID()
	saved := ownersDir
	ownersDir = t.TempDir()
	t.Cleanup(func() { ownersDir = saved })
	orphan := t.TempDir()
	if err := os.Mkdir(filepath.Join(orphan, "h1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan, "h1", "libvirtd.pid"), []byte(strconv.Itoa(daemon)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ownersDir, "1.owner"), []byte(orphan+"\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReapOrphans(); err != nil {
		t.Fatal(err)
	}
	if !isLibvirtd(daemon) {
		t.Fatalf("ReapOrphans killed libvirtd %d of a live cluster, named by an orphan's stale pid file", daemon)
	}
}

// A registration another process has created but not yet locked and
// renamed is left alone by ReapOrphans (reaping it failed that process's
// rename); one abandoned long ago is removed.
func TestReapOrphansLeavesRegistrationsInProgress(t *testing.T) {
	saved := ownersDir
	ownersDir = t.TempDir()
	t.Cleanup(func() { ownersDir = saved })
	fresh := filepath.Join(ownersDir, "new-1")
	stale := filepath.Join(ownersDir, "new-2")
	for _, n := range []string{fresh, stale} {
		if err := os.WriteFile(n, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := ReapOrphans(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a registration in progress was removed: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("an abandoned registration is still there (%v)", err)
	}
}
