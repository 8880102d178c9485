package libvirtharness

import (
	"context"
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
