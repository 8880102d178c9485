// Package etcdtest runs real etcd members (Debian's etcd-server binary) on
// loopback for tests: each member on its own address in 127.47.0.0/16 with
// free ports, in a temporary directory, stopped by its PID at cleanup.
//
// Without an etcd binary the tests skip, unless ACLI_REQUIRE_ETCD=1 (CI sets
// it), where they fail.
package etcdtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Binary returns the etcd binary's path, skipping (or failing, under
// ACLI_REQUIRE_ETCD=1) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ACLI_ETCD"); p != "" {
		return p
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("ACLI_REQUIRE_ETCD") == "1" {
			t.Fatalf("etcd binary not found (apt-get install etcd-server): %v", err)
		}
		t.Skip("etcd binary not found; apt-get install etcd-server (ACLI_REQUIRE_ETCD=1 makes this a failure)")
	}
	return p
}

// Member is one etcd process.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string
	Dir       string

	bin     string
	args    []string
	logPath string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the current process has been waited for.
	exited chan struct{}
}

// Cluster is a set of members started together.
type Cluster struct {
	Members []*Member
	t       testing.TB
}

// Start starts an n-member cluster and waits until it has a leader.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	// A random /24 of 127.47.0.0/16 per cluster keeps parallel test
	// packages apart; ports are free ones on that address.
	octet := 1 + rand.IntN(254)
	c := &Cluster{t: t}
	var initial []string
	for i := range n {
		ip := fmt.Sprintf("127.47.%d.%d", octet, i+1)
		m := &Member{
			Name:      fmt.Sprintf("m%d", i+1),
			ClientURL: "http://" + net.JoinHostPort(ip, freePort(t, ip)),
			PeerURL:   "http://" + net.JoinHostPort(ip, freePort(t, ip)),
			Dir:       filepath.Join(dir, fmt.Sprintf("m%d", i+1)),
			bin:       bin,
		}
		m.logPath = m.Dir + ".log"
		initial = append(initial, m.Name+"="+m.PeerURL)
		c.Members = append(c.Members, m)
	}
	token := fmt.Sprintf("acli-test-%d-%d", os.Getpid(), rand.Int64())
	for _, m := range c.Members {
		m.args = Args(m.Name, m.Dir, m.ClientURL, m.PeerURL, strings.Join(initial, ","), token)
		if err := m.start(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.Stop)
	c.WaitHealthy(t, 30*time.Second)
	return c
}

// Args are the etcd flags of one member of a new cluster, tuned for
// loopback: short heartbeats and election timeout (fast failover), room for
// clusterd's larger transactions.
func Args(name, dir, clientURL, peerURL, initialCluster, token string) []string {
	return []string{
		"--name", name,
		"--data-dir", dir,
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", initialCluster,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", token,
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
		"--max-txn-ops", "10000",
		"--logger", "zap",
		"--log-level", "warn",
	}
}

func freePort(t testing.TB, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("no free port on %s: %v", ip, err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ClientURL
	}
	return out
}

// WaitHealthy waits until every running member answers a linearizable read.
func (c *Cluster) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		for {
			err := m.probe()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("etcd %s not healthy after %v: %v\n%s", m.Name, timeout, err, m.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (m *Member) probe() error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = cli.Get(ctx, "/probe")
	return err
}

func (m *Member) start() error {
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.bin, m.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The member dies with the test binary, also one killed by its timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start etcd %s: %w", m.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()
	return nil
}

// Running reports whether the member's process is alive (a stopped one is).
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

func (m *Member) signal(sig syscall.Signal) {
	m.mu.Lock()
	cmd := m.cmd
	m.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Signal(sig)
	}
}

// Kill SIGKILLs the member and waits for it to exit.
func (m *Member) Kill() {
	m.signal(syscall.SIGCONT)
	m.signal(syscall.SIGKILL)
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	if exited != nil {
		<-exited
	}
}

// Pause SIGSTOPs the member; Resume SIGCONTs it.
func (m *Member) Pause()  { m.signal(syscall.SIGSTOP) }
func (m *Member) Resume() { m.signal(syscall.SIGCONT) }

// Restart starts a killed member again on its data directory.
func (m *Member) Restart() error {
	if m.Running() {
		return fmt.Errorf("etcd %s is still running", m.Name)
	}
	for i, a := range m.args {
		if a == "--initial-cluster-state" {
			m.args[i+1] = "existing"
		}
	}
	return m.start()
}

// Log returns the member's log (for failure messages).
func (m *Member) Log() string {
	b, _ := os.ReadFile(m.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop kills every member.
func (c *Cluster) Stop() {
	for _, m := range c.Members {
		m.Kill()
	}
}
