package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/store/etcd/etcdtest"
)

// Several managers on real etcd members: built clusterds started and
// signalled by the test, acli given the list of all of them.

var roleLine = regexp.MustCompile(`^clusterd: (serving|following) on (\S+) `)

// manager is one clusterd of a shared cluster; role follows its stdout.
type manager struct {
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *lockedBuffer

	mu   sync.Mutex
	addr string
	role string // "serving" (the leader) or "following"
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (m *manager) state() (addr, role string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr, m.role
}

// startManager runs clusterd on etcd at ip (a free port) or ip:port, and
// waits for its first role line.
func startManager(t testing.TB, ip string, endpoints []string, extra ...string) *manager {
	t.Helper()
	eps := make([]string, len(endpoints))
	for i, e := range endpoints {
		eps[i] = strings.TrimPrefix(e, "http://")
	}
	listen := ip
	if !strings.Contains(ip, ":") {
		listen += ":0"
	}
	args := append([]string{"--listen", listen, "--data-dir", t.TempDir(), "--store", "etcd://" + strings.Join(eps, ","),
		"--sim", "3", "--sim-ssh-port", "0", "--lease-ttl", "2s"}, extra...)
	m := &manager{cmd: exec.Command(filepath.Join(binDir, "clusterd"), args...), done: make(chan struct{}), stderr: &lockedBuffer{}}
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	m.cmd.Stderr = m.stderr
	// clusterd dies with the test binary, also one killed by its timeout.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-m.done:
			return
		default:
		}
		_ = m.cmd.Process.Signal(syscall.SIGCONT)
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if r := roleLine.FindStringSubmatch(sc.Text()); r != nil {
				m.mu.Lock()
				m.role, m.addr = r[1], r[2]
				m.mu.Unlock()
			}
		}
		_ = m.cmd.Wait()
		close(m.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if addr, _ := m.state(); addr != "" {
			return m
		}
		select {
		case <-m.done:
			t.Fatalf("clusterd exited: %s", m.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("clusterd gave no role line in 20s: %s", m.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// haCluster is 3 etcd members and 3 clusterds on 127.47.X.0/24.
type haCluster struct {
	etcd     *etcdtest.Cluster
	managers []*manager
	octet    int
}

// ip is the address of the nth manager.
func (c *haCluster) ip(n int) string { return fmt.Sprintf("127.47.%d.%d", c.octet, 11+n) }

func startHA(t testing.TB, extra ...string) *haCluster {
	t.Helper()
	c := &haCluster{etcd: etcdtest.Start(t, 3), octet: 1 + rand.IntN(254)}
	for i := range 3 {
		c.managers = append(c.managers, startManager(t, c.ip(i), c.etcd.Endpoints(), extra...))
	}
	c.leader(t, nil)
	return c
}

// servers is the --server list of every manager.
func (c *haCluster) servers() string {
	var out []string
	for _, m := range c.managers {
		addr, _ := m.state()
		out = append(out, addr)
	}
	return strings.Join(out, ",")
}

// leader waits until exactly one live manager other than not serves.
func (c *haCluster) leader(t testing.TB, not *manager) *manager {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var leaders []*manager
		for _, m := range c.managers {
			select {
			case <-m.done:
				continue
			default:
			}
			if _, role := m.state(); role == "serving" && m != not {
				leaders = append(leaders, m)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d leaders after 30s", len(leaders))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHALeaderKilledMidEvacuation: SIGKILL the leader while acli waits on
// an evacuation. Another manager leads within the lease TTL, resumes the
// evacuation (the VMs still on the host planned again) and finishes it; the
// waiting acli, following the task through the same --server list, ends
// with it (exit 0); no VM is lost or doubled.
func TestHALeaderKilledMidEvacuation(t *testing.T) {
	c := startHA(t, "--sim-speed", "1")
	srv := c.servers()
	want(t, srv, 0, "vm.create ev[1..4] memory=4G num_vcpus=1")
	want(t, srv, 0, "vm.on ev1,ev2,ev3,ev4 host=h1")

	cmd := exec.Command(filepath.Join(binDir, "acli"), "host.enter_maintenance_mode", "h1")
	cmd.Env = append(os.Environ(), "ACLI_SERVER="+srv, "HOME="+t.TempDir())
	out := &lockedBuffer{}
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	// Kill once a migration is under way.
	deadline := time.Now().Add(20 * time.Second)
	// Progress lines stay on a terminal; the running task says what it does.
	for !strings.Contains(acli(t, srv, "", "--jq", ".[].progress_message", "task.list", "include_completed=false").out, "migrating vm") {
		if time.Now().After(deadline) {
			t.Fatalf("no migration started:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	old := c.leader(t, nil)
	if err := old.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-old.done
	next := c.leader(t, old)
	t.Logf("new leader serving %v after the SIGKILL (lease TTL 2s)", time.Since(killed).Round(10*time.Millisecond))

	select {
	case <-waited:
	case <-time.After(60 * time.Second):
		t.Fatalf("acli still waiting 60s after the leader was killed:\n%s", out.String())
	}
	code := cmd.ProcessState.ExitCode()
	if code != 0 || !strings.Contains(out.String(), "EnterMaintenanceMode: complete") {
		t.Fatalf("waiting acli: exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	addr, _ := next.state()
	checkPlacement(t, addr, "h1", 4)
	if h := hostOf(t, addr, "h1"); h.NodeState != "EnteredMaintenanceMode" || h.NumVms != 0 {
		t.Fatalf("h1 after the resumed evacuation: %+v", h)
	}
	// A manager joining later follows and answers with the same model.
	restarted := startManager(t, c.ip(3), c.etcd.Endpoints())
	raddr, role := restarted.state()
	if role != "following" {
		t.Fatalf("restarted manager is %s, want following", role)
	}
	checkPlacement(t, raddr, "h1", 4)
}

// checkPlacement: n VMs, each running on exactly one host, none on empty.
func checkPlacement(t *testing.T, addr, empty string, n int) {
	t.Helper()
	var vms []vmJSON
	data(t, addr, &vms, "vm.list")
	if len(vms) != n {
		t.Fatalf("%d VMs, want %d: %+v", len(vms), n, vms)
	}
	for _, v := range vms {
		if v.PowerState != "kOn" || v.HostName == "" || v.HostName == empty {
			t.Fatalf("vm %s is %s on %q after the evacuation of %s", v.Name, v.PowerState, v.HostName, empty)
		}
	}
}

// TestHALeaderPausedPastItsLease: SIGSTOP the leader past its lease; another
// leads; after SIGCONT the old one notices, stops its manager and follows:
// at no time do two managers serve as leader.
func TestHALeaderPausedPastItsLease(t *testing.T) {
	c := startHA(t, "--sim-speed", "100")
	srv := c.servers()
	want(t, srv, 0, "vm.create p1 memory=1G")
	old := c.leader(t, nil)
	old.cmd.Process.Signal(syscall.SIGSTOP)
	next := c.leader(t, old)
	want(t, srv, 0, "vm.create p2 memory=1G")
	old.cmd.Process.Signal(syscall.SIGCONT)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, role := old.state(); role == "following" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resumed old leader never followed:\n%s", old.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := c.leader(t, nil); got != next {
		t.Fatal("the leadership moved again after the old leader resumed")
	}
	if !strings.Contains(old.stderr.String(), "leadership lost") {
		t.Fatalf("old leader did not say it lost the leadership:\n%s", old.stderr.String())
	}
	// Through the old leader (now forwarding) the model has both VMs.
	oldAddr, _ := old.state()
	var vms []vmJSON
	data(t, oldAddr, &vms, "vm.list")
	if len(vms) != 2 {
		t.Fatalf("vm.list through the old leader: %+v", vms)
	}
	want(t, oldAddr, 0, "vm.create p3 memory=1G")
}

// TestHAStoreMembersLost: one etcd member of three down, service goes on;
// two down, a change fails with exit 6 naming the store, a read answers
// the last known state with a warning that it may be stale (exit 0, and a
// "stale" field in -o json); back, service resumes.
func TestHAStoreMembersLost(t *testing.T) {
	c := startHA(t, "--sim-speed", "100")
	srv := c.servers()
	want(t, srv, 0, "vm.create s1 memory=1G")
	c.etcd.Members[0].Kill()
	retryWant(t, srv, "vm.create s2 memory=1G")
	st := want(t, srv, 0, "cluster.status", "Store:           etcd", "Managers:", "Store members:", "unhealthy")
	if strings.Count(st.out, "  leader") != 1 || strings.Count(st.out, "follower") != 2 || strings.Count(st.out, " healthy") != 2 {
		t.Fatalf("cluster.status with one etcd member down:\n%s", st.out)
	}
	c.etcd.Members[1].Kill()
	r := acli(t, srv, "", "--timeout", "40s", "vm.create", "s3", "memory=1G")
	if r.code != 6 || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
		t.Fatalf("vm.create without quorum: exit %d\n%s%s", r.code, r.out, r.err)
	}
	t.Logf("without quorum: %s", strings.TrimSpace(r.err))
	// Reads answer the last known state, saying it may be stale (once the
	// leader has lost its lease, every manager answers from its copy).
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := acli(t, srv, "", "vm.list")
		if r.code == 0 && strings.Contains(r.err, "Warning: answered from this manager's copy of the store") {
			if !strings.Contains(r.out, "s1") || !strings.Contains(r.out, "s2") || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
				t.Fatalf("vm.list without quorum:\n%s%s", r.out, r.err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vm.list without quorum never said it may be stale: exit %d\n%s%s", r.code, r.out, r.err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	js := acli(t, srv, "", "-o", "json", "vm.list")
	var doc struct {
		Data   []vmJSON `json:"data"`
		Stale  string   `json:"stale"`
		Status int      `json:"status"`
	}
	if err := json.Unmarshal([]byte(js.out), &doc); err != nil || js.code != 0 || len(doc.Data) != 2 || !strings.Contains(doc.Stale, "may be stale") {
		t.Fatalf("vm.list -o json without quorum: exit %d %v\n%s%s", js.code, err, js.out, js.err)
	}
	for _, m := range c.etcd.Members[:2] {
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	retryWant(t, srv, "vm.create s4 memory=1G")
	var vms []vmJSON
	data(t, srv, &vms, "vm.list")
	names := map[string]bool{}
	for _, v := range vms {
		names[v.Name] = true
	}
	if !names["s1"] || !names["s2"] || !names["s4"] {
		t.Fatalf("VMs after the store came back: %+v", vms)
	}
}

// retryWant runs acli until it succeeds, for up to 30s (the store and the
// managers recovering).
func retryWant(t *testing.T, addr, args string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := acli(t, addr, "", strings.Fields(args)...)
		if r.code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("acli %s: exit %d\n%s%s", args, r.code, r.out, r.err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// BenchmarkHAFailover measures the time from SIGKILL of the leader to the
// first change a new leader accepts, asked through the --server list of
// all managers (lease TTL 2s); the killed manager rejoins as a follower.
func BenchmarkHAFailover(b *testing.B) {
	c := startHA(b, "--sim-speed", "100")
	cl, err := client.Dial(context.Background(), client.Options{Addr: c.servers()})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		old := c.leader(b, nil)
		oldAddr, _ := old.state()
		if err := old.cmd.Process.Kill(); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		<-old.done
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := cl.Network.CreateNetwork(ctx, &acliv1.CreateNetworkRequest{Name: fmt.Sprintf("n%d", i), VlanId: int32(100 + i)})
			cancel()
			if err == nil {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("no leader accepted a change 30s after the kill: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		total += time.Since(start)
		for j, m := range c.managers {
			if m == old {
				c.managers[j] = startManager(b, oldAddr, c.etcd.Endpoints())
			}
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/failover")
}

// TestDemoHA runs make demo-ha's script without a terminal: it loads the
// demo through three managers on three etcd members, kills the leader,
// answers through another, and leaves no process behind.
func TestDemoHA(t *testing.T) {
	etcdtest.Binary(t)
	netPrefix := fmt.Sprintf("127.47.%d", 1+rand.IntN(254))
	cmd := exec.Command("sh", "../../scripts/demo-ha.sh", binDir, filepath.Join(t.TempDir(), "demo"), netPrefix)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	r := runCmd(t, cmd)
	if r.code != 0 || !strings.Contains(r.out, "a new leader serves after") || strings.Count(r.out, "kOn") < 8 {
		t.Fatalf("demo-ha: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	for _, addr := range []string{netPrefix + ".1:2379", netPrefix + ".11:2030", netPrefix + ".12:2030", netPrefix + ".13:2030"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s still taken after the demo: %v", addr, err)
		}
		l.Close()
	}
}
