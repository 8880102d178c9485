package rulestest_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/leader"
	"github.com/acli-dev/acli/manager/rulestest"
	"github.com/acli-dev/acli/manager/store/etcd/etcdtest"
)

// The soak's length: ACLI_SOAK_DURATION or -soak.duration (make test runs
// the short default, make soak a minute), and its manager restarts.
var (
	soakDuration = flag.Duration("soak.duration", envDuration("ACLI_SOAK_DURATION", 35*time.Second), "how long the soak's load runs")
	soakRestarts = flag.Int("soak.restarts", 3, "SIGKILL and restart cycles of clusterd during the soak")
	soakClients  = flag.Int("soak.clients", 24, "concurrent clients of the soak")
	// The soak against several managers sharing etcd.
	soakManagersDuration = flag.Duration("soak.managers.duration", envDuration("ACLI_SOAK_MANAGERS_DURATION", 20*time.Second), "how long the several-manager soak's load runs")
)

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

// The simulated cluster of the soak lives in 127.47.0.0/16; SSH is off.
const soakSim = `cluster_name: soak
redundancy_factor: 2
hosts: 4
addressing:
  hypervisor_start: 127.47.0.21
  cvm_start: 127.47.0.31
  data_services_ip: 127.47.0.30
`

// A clusterd is ready when it serves (alone or elected) or follows.
var readyLine = regexp.MustCompile(`^clusterd: (?:serving|following) on (\S+) `)

// clusterd is a clusterd process the soak may kill and restart on the same
// data dir and address.
type clusterd struct {
	t      *testing.T
	bin    string
	args   []string
	addr   string
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *bytes.Buffer
}

func buildClusterd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "clusterd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/acli-dev/acli/cmd/clusterd").CombinedOutput()
	if err != nil {
		t.Fatalf("building clusterd: %v\n%s", err, out)
	}
	return bin
}

// start runs clusterd on addr (a free port the first time) and waits for
// its ready line.
func (d *clusterd) start() error {
	cmd := exec.Command(d.bin, append([]string{"--listen", d.addr}, d.args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		cmd.Wait()
		close(done)
	}()
	d.mu.Lock()
	d.cmd, d.done, d.stderr = cmd, done, stderr
	d.mu.Unlock()
	select {
	case l := <-lines:
		m := readyLine.FindStringSubmatch(l)
		if m == nil {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("clusterd: no ready line (got %q); stderr:\n%s", l, stderr)
		}
		d.addr = m[1]
		go func() { // later lines (a follower elected) are not needed
			for range lines {
			}
		}()
		return nil
	case <-done:
		return fmt.Errorf("clusterd exited; stderr:\n%s", stderr)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("clusterd not ready after 30 s; stderr:\n%s", stderr)
	}
}

// kill sends SIGKILL and waits for the process to go.
func (d *clusterd) kill() {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// restart kills clusterd without warning and starts it again on the same
// address; a port taken meanwhile is retried for a while.
func (d *clusterd) restart(ctx context.Context) error {
	d.kill()
	var err error
	for range 20 {
		if err = d.start(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return err
}

// TestSoak drives 24 clients against a real clusterd for a bounded time,
// with host and CVM failures and SIGKILL restarts, and checks every rule.
// Violations of rules listed in rulestest.Known are logged, not failed.
func TestSoak(t *testing.T) {
	if *soakDuration <= 0 {
		t.Skip("soak disabled (duration 0)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sim.yaml")
	if err := os.WriteFile(cfg, []byte(soakSim), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &clusterd{t: t, bin: buildClusterd(t), addr: "127.47.0.1:0",
		args: []string{"--data-dir", filepath.Join(dir, "data"), "--sim-config", cfg, "--sim-speed", "20", "--sim-ssh-port", "0", "--log-level", "warn"}}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.kill)

	ctx, cancel := context.WithTimeout(context.Background(), *soakDuration+3*time.Minute)
	defer cancel()
	rep, err := rulestest.Soak(ctx, rulestest.SoakConfig{
		Endpoints: []string{d.addr},
		Restart:   d.restart,
		Restarts:  *soakRestarts,
		Clients:   *soakClients,
		Duration:  *soakDuration,
		Logf:      t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	report(t, rep, *soakRestarts, "")
	if t.Failed() {
		d.kill() // its stderr is complete only once the process has gone
		d.mu.Lock()
		t.Logf("clusterd stderr (last run):\n%s", d.stderr)
		d.mu.Unlock()
	}
}

// report logs the soak's figures and fails on violations of rules not
// listed in rulestest.Known, as the rule or as prefix+rule.
func report(t *testing.T, rep *rulestest.SoakReport, restarts int, prefix string) {
	t.Helper()
	t.Log(rep.Summary())
	var kinds []string
	for k := range rep.Ops {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Logf("  %-36s %6d  %.150s", k, rep.Ops[k], rep.Answers[k])
	}
	for _, rule := range rulestest.Rules {
		n := rep.Violations[rule]
		if n == 0 {
			continue
		}
		known := rulestest.IsKnown(rule) || rulestest.IsKnown(prefix+rule)
		report := t.Errorf
		if known {
			report = t.Logf
		}
		report("rule %s broken %d times (known: %v), e.g.:", rule, n, known)
		for _, ex := range rep.Examples[rule] {
			t.Logf("    %s", ex)
		}
	}
	if rep.Restarts < restarts {
		t.Errorf("%d of %d restarts done", rep.Restarts, restarts)
	}
	if rep.Done == 0 {
		t.Error("the soak did no operation")
	}
}

// TestSoakManagers runs the soak against three clusterds sharing an etcd
// store: clients spread over them and fail over; the restarts SIGKILL the
// elected leader, so another takes over, and start it again as a follower.
func TestSoakManagers(t *testing.T) {
	if *soakManagersDuration <= 0 {
		t.Skip("several-manager soak disabled (duration 0)")
	}
	ec := etcdtest.Start(t, 1)
	var members []string
	for _, u := range ec.Endpoints() {
		members = append(members, strings.TrimPrefix(u, "http://"))
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sim.yaml")
	if err := os.WriteFile(cfg, []byte(soakSim), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildClusterd(t)
	var ds []*clusterd
	var endpoints []string
	for i := range 3 {
		d := &clusterd{t: t, bin: bin, addr: fmt.Sprintf("127.47.0.%d:0", i+1),
			args: []string{"--data-dir", filepath.Join(dir, fmt.Sprint("m", i)), "--store", "etcd://" + strings.Join(members, ","),
				"--sim-config", cfg, "--sim-speed", "20", "--sim-ssh-port", "0", "--log-level", "warn"}}
		if err := d.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.kill)
		ds = append(ds, d)
		endpoints = append(endpoints, d.addr)
	}
	// The leader is the manager the others name in their answers' header.
	leaderOf := func(ctx context.Context) *clusterd {
		for _, d := range ds {
			conn, err := grpc.NewClient(d.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				continue
			}
			var md metadata.MD
			// cluster.status always goes to the leader (a follower answers
			// cluster.get from its own copy of the store).
			_, err = acliv1.NewClusterServiceClient(conn).GetClusterStatus(ctx, &acliv1.GetClusterStatusRequest{}, grpc.Header(&md))
			conn.Close()
			if err != nil {
				continue
			}
			l := md.Get(leader.LeaderHeader)
			for _, o := range ds {
				if (len(l) == 0 && o == d) || (len(l) > 0 && o.addr == l[0]) {
					return o
				}
			}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), *soakManagersDuration+3*time.Minute)
	defer cancel()
	// Wait for a leader with the cluster created.
	for end := time.Now().Add(30 * time.Second); leaderOf(ctx) == nil; {
		if time.Now().After(end) {
			t.Fatal("no clusterd elected after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	const restarts = 2
	rep, err := rulestest.Soak(ctx, rulestest.SoakConfig{
		Endpoints: endpoints,
		Restart: func(ctx context.Context) error {
			l := leaderOf(ctx)
			if l == nil {
				return fmt.Errorf("no leader to kill")
			}
			t.Logf("killing the leader %s", l.addr)
			if err := l.restart(ctx); err != nil {
				return err
			}
			for end := time.Now().Add(30 * time.Second); leaderOf(ctx) == nil; {
				if time.Now().After(end) {
					return fmt.Errorf("no leader 30 s after killing %s", l.addr)
				}
				time.Sleep(100 * time.Millisecond)
			}
			return nil
		},
		Restarts: restarts,
		Clients:  *soakClients,
		Duration: *soakManagersDuration,
		Logf:     t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	report(t, rep, restarts, "managers ")
	if t.Failed() {
		for _, d := range ds {
			d.kill() // its stderr is complete only once the process has gone
			d.mu.Lock()
			t.Logf("clusterd %s stderr:\n%s", d.addr, d.stderr)
			d.mu.Unlock()
		}
	}
}
