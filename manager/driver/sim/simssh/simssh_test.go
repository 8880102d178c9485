package simssh

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acli-dev/acli/fanout"
	"golang.org/x/crypto/ssh"
)

var vmsByHost = map[string][]VMInfo{
	"127.0.0.61": {
		{ID: 0, Name: "db-backup", State: "shut off"},
		{ID: 7, Name: "web-frontend-01", State: "running"},
		{ID: 3, Name: "db01", State: "paused"},
	},
}

func lookup(ip string) []VMInfo { return vmsByHost[ip] }

func serve(t *testing.T, dir string) (*Server, []Target) {
	t.Helper()
	s, err := New(dir, lookup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	targets := []Target{
		{IP: "127.0.0.61", Name: "sim-host-1", Kind: KindHost},
		{IP: "127.0.0.62", Name: "sim-cvm-1", Kind: KindCVM, HostIP: "127.0.0.61"},
	}
	if err := s.Serve(targets); err != nil {
		t.Fatal(err)
	}
	return s, targets
}

// run executes cmd on the targets through the fan-out client, trusting
// only the host keys the server publishes.
func run(t *testing.T, s *Server, targets []Target, identity, cmd string, timeout time.Duration) fanout.Result {
	t.Helper()
	opts := fanout.Options{IdentityFiles: []string{identity}, DefaultUser: "root", CommandTimeout: timeout}
	for _, tg := range targets {
		hk, err := s.HostKey(tg.IP)
		if err != nil {
			t.Fatal(err)
		}
		opts.Targets = append(opts.Targets, fanout.Target{Host: tg.IP, Port: s.Port(tg.IP), HostKeys: []string{hk.AuthorizedKey}})
	}
	res, err := fanout.Run(context.Background(), opts, cmd, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestShimsNameTheHostAndListItsVMs(t *testing.T) {
	s, targets := serve(t, t.TempDir())
	res := run(t, s, targets, s.ClientKeyPath(), `hostname; echo "$HOSTNAME"; hostname -i; virsh list --all`, 0)
	host, cvm := res.Hosts[0], res.Hosts[1]
	wantHost := "sim-host-1\nsim-host-1\n127.0.0.61\n" +
		" Id   Name              State\n" +
		"---------------------------------\n" +
		" 3    db01              paused\n" +
		" 7    web-frontend-01   running\n" +
		" -    db-backup         shut off\n\n"
	if host.Status != fanout.StatusOK || host.Stdout != wantHost {
		t.Errorf("host: %s %q\nwant %q (stderr %q)", host.Status, host.Stdout, wantHost, host.Stderr)
	}
	// CVMs have no virsh: the shell says so, like a real CVM would.
	if cvm.ExitCode != 127 || !strings.HasPrefix(cvm.Stdout, "sim-cvm-1\nsim-cvm-1\n127.0.0.62\n") || !strings.Contains(cvm.Stderr, "virsh") {
		t.Errorf("cvm: %+v", cvm)
	}

	res = run(t, s, targets[:1], s.ClientKeyPath(), "virsh list --name; virsh list | wc -l; virsh nodeinfo", 0)
	if h := res.Hosts[0]; h.Stdout != "db01\nweb-frontend-01\n\n5\n" || h.ExitCode != 1 || !strings.Contains(h.Stderr, "unknown command: 'nodeinfo'") {
		t.Errorf("virsh variants: %+v", h)
	}
}

func TestKeysPersistAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	s1, targets := serve(t, dir)
	k1, _ := s1.HostKey("127.0.0.61")
	client1, _ := os.ReadFile(s1.ClientKeyPath())
	s1.Close()

	s2, _ := serve(t, dir)
	k2, _ := s2.HostKey("127.0.0.61")
	client2, _ := os.ReadFile(s2.ClientKeyPath())
	if k1 != k2 || !bytes.Equal(client1, client2) {
		t.Fatalf("keys changed across restart: %v %v", k1, k2)
	}
	if !strings.HasPrefix(k1.AuthorizedKey, "ssh-ed25519 ") || !strings.HasPrefix(k1.Fingerprint, "SHA256:") {
		t.Errorf("host key %+v", k1)
	}
	if k3, _ := s2.HostKey("127.0.0.62"); k3 == k1 {
		t.Error("host and CVM share a host key")
	}
	if fi, err := os.Stat(s2.ClientKeyPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("client key mode: %v %v", fi.Mode(), err)
	}
	if res := run(t, s2, targets, s2.ClientKeyPath(), "true", 0); res.Status != 0 {
		t.Errorf("restarted server: %+v", res.Hosts)
	}
}

func TestForeignClientKeyRefused(t *testing.T) {
	s, targets := serve(t, t.TempDir())
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	foreign := filepath.Join(t.TempDir(), "id_ed25519")
	os.WriteFile(foreign, pem.EncodeToMemory(block), 0o600)
	res := run(t, s, targets, foreign, "hostname", 0)
	for _, h := range res.Hosts {
		if h.Status != fanout.StatusUnreachable || !strings.Contains(h.Error, "authentication as root refused") {
			t.Errorf("foreign key: %+v", h)
		}
	}
}

func TestServeRefusesNonLoopbackAndDuplicates(t *testing.T) {
	s, targets := serve(t, t.TempDir())
	if err := s.Serve([]Target{{IP: "10.1.2.3", Kind: KindHost}}); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("non-loopback: %v", err)
	}
	if err := s.Serve(targets[:1]); err == nil || !strings.Contains(err.Error(), "already served") {
		t.Errorf("duplicate: %v", err)
	}
	if err := s.Serve([]Target{{IP: "127.0.0.63", Kind: "vm"}}); err == nil || !strings.Contains(err.Error(), `unknown kind "vm"`) {
		t.Errorf("bad kind: %v", err)
	}
}

func TestClosedSessionStopsCommand(t *testing.T) {
	s, targets := serve(t, t.TempDir())
	res := run(t, s, targets[:1], s.ClientKeyPath(), "sleep 30", time.Second)
	if res.Hosts[0].Status != fanout.StatusTimeout {
		t.Fatalf("%+v", res.Hosts[0])
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.active.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("session still running after it closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFormatVirshListEmpty(t *testing.T) {
	want := " Id   Name   State\n-------------------\n\n"
	if got := FormatVirshList(nil, true); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A relative data dir (make demo's .demo/data) works, and sessions see the
// simulated machine's paths, not the data dir's.
func TestRelativeDataDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s, targets := serve(t, "data")
	if !filepath.IsAbs(s.ClientKeyPath()) {
		t.Errorf("client key path %q is relative", s.ClientKeyPath())
	}
	res := run(t, s, targets[:1], s.ClientKeyPath(), "command -v virsh; command -v hostname; pwd", 0)
	if h := res.Hosts[0]; h.Status != fanout.StatusOK || h.Stdout != "/usr/bin/virsh\n/usr/bin/hostname\n/root\n" {
		t.Errorf("got %s %q (stderr %q)", h.Status, h.Stdout, h.Stderr)
	}
}

// A connection that never authenticates is closed at the handshake
// deadline, and only so many may wait at once per address; an
// authenticated one holds no place.
func TestUnauthenticatedConnectionsAreBounded(t *testing.T) {
	s, err := New(t.TempDir(), lookup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.HandshakeTimeout = 500 * time.Millisecond
	s.MaxUnauthenticated = 2
	targets := []Target{{IP: "127.42.0.61", Name: "sim-host-1", Kind: KindHost}}
	if err := s.Serve(targets); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(targets[0].IP, strconv.Itoa(s.Port(targets[0].IP)))
	// silent connects and waits for the server's banner, then says nothing.
	silent := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
			t.Fatalf("banner %q, %v", line, err)
		}
		return c
	}
	// closed reports whether the server ends the connection within 10 s.
	closed := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, c)
		return err == nil // EOF: the server closed it
	}

	a, b := silent(), silent()
	identity := filepath.Join(s.dir, "id_ed25519")
	// Both places are taken: a third connection is closed at once, so even
	// the right key cannot log in.
	if res := run(t, s, targets, identity, "hostname", 5*time.Second); res.Hosts[0].Status == fanout.StatusOK {
		t.Fatalf("logged in with every unauthenticated place taken: %+v", res.Hosts[0])
	}
	// The silent ones are dropped at the deadline, which frees the places.
	if !closed(a) || !closed(b) {
		t.Fatal("a connection that never authenticated was kept past the handshake deadline")
	}
	c := silent()
	if res := run(t, s, targets, identity, "hostname", 5*time.Second); res.Hosts[0].Status != fanout.StatusOK {
		t.Fatalf("login with a free place: %+v", res.Hosts[0])
	}
	// The session above authenticated and ended; one silent connection and
	// a new one fit in the two places.
	d := silent()
	if !closed(c) || !closed(d) {
		t.Fatal("a connection that never authenticated was kept past the handshake deadline")
	}
}
