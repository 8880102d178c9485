package datapath

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acli-dev/acli/manager/datapath/dptest"
)

// Test addresses: a /24 of this run's own (CVMs .11-.13, redirectors .1-.3,
// DSIP .20).
var testNet = dptest.MustNet()

func requireTargets(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		missing(t, err.Error())
	}
	for _, b := range []string{"iscsi-inq", "iscsi-perf"} {
		if _, err := exec.LookPath(b); err != nil {
			missing(t, b+" not installed (apt-get install libiscsi-bin)")
		}
	}
}

func missing(t testing.TB, why string) {
	t.Helper()
	dptest.Missing(t, why)
}

// startCVMs runs n CVM targets exporting one 64 MiB vDisk each of them
// serves from the same file.
func startCVMs(t testing.TB, n int, disks ...string) ([]*CVM, []Disk) {
	t.Helper()
	dir := t.TempDir()
	var ds []Disk
	for i, name := range disks {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 64<<20); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, Disk{IQN: "iqn.2010-06.com.nutanix:test-" + name, Path: p, ID: fmt.Sprintf("%08d", i+1)})
	}
	var cvms []*CVM
	for i := range n {
		c := NewCVM(fmt.Sprintf("cvm%d", i+1), fmt.Sprintf("%s%d", testNet, 11+i), filepath.Join(dir, fmt.Sprintf("cvm%d", i+1)))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.Start(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Stop() })
		for _, d := range ds {
			if err := c.Export(context.Background(), d); err != nil {
				t.Fatal(err)
			}
		}
		cvms = append(cvms, c)
	}
	return cvms, ds
}

// switchable is a Route whose answer a test changes.
type switchable struct {
	mu sync.Mutex
	to string
	n  int
}

func (s *switchable) route(Login) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.to, nil
}

func (s *switchable) set(to string) {
	s.mu.Lock()
	s.to = to
	s.mu.Unlock()
}

func waitSessions(t testing.TB, c *CVM, want int, d time.Duration) []Session {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ss, err := c.Sessions(context.Background())
		if err == nil && len(ss) == want {
			return ss
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s serves %d sessions (%v, err %v), want %d", c.Name, len(ss), ss, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// libiscsi's tools log in through the redirector and land on the CVM it
// names; every CVM serves the same bytes with the same SCSI identity.
func TestToolsFollowTheRedirect(t *testing.T) {
	requireTargets(t)
	cvms, ds := startCVMs(t, 2, "d1")
	sw := &switchable{to: cvms[0].IP + ":3261"}
	r, err := Listen(testNet+"1:0", sw.route, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	url := "iscsi://" + r.Addr() + "/" + ds[0].IQN + "/1"
	var inq [2][]byte
	for i, c := range cvms {
		sw.set(c.IP + ":3261")
		out, err := exec.Command("iscsi-inq", "-e", "1", "-c", "128", url).CombinedOutput()
		if err != nil {
			t.Fatalf("iscsi-inq via redirector to %s: %v\n%s", c.Name, err, out)
		}
		if !bytes.Contains(out, []byte("00000001")) {
			t.Fatalf("unit serial from %s:\n%s", c.Name, out)
		}
		inq[i] = out
	}
	if !bytes.Equal(inq[0], inq[1]) {
		t.Fatalf("the CVMs report different identities:\n%s\n%s", inq[0], inq[1])
	}
	out, err := exec.Command("iscsi-inq", url).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("NUTANIX")) || !bytes.Contains(out, []byte("VDISK")) {
		t.Fatalf("standard inquiry: %v\n%s", err, out)
	}
	if sw.n != 3 {
		t.Fatalf("%d logins reached the redirector, want 3", sw.n)
	}
}

// A session stays on its CVM until that CVM dies; then libiscsi logs in
// again through the redirector, which now names the other CVM. Ending the
// temporary session after the first CVM is back moves it home (failback).
func TestSessionFailsOverAndBack(t *testing.T) {
	requireTargets(t)
	cvms, ds := startCVMs(t, 2, "d1")
	sw := &switchable{to: cvms[0].IP + ":3261"}
	r, err := Listen(testNet+"1:0", sw.route, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	perf := exec.Command("iscsi-perf", "-i", "iqn.2010-06.com.nutanix:test-initiator", "-x", "1000", "-m", "1",
		"iscsi://"+r.Addr()+"/"+ds[0].IQN+"/1")
	if err := perf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { perf.Process.Kill(); perf.Wait() }()

	ss := waitSessions(t, cvms[0], 1, 10*time.Second)
	if ss[0].Initiator != "iqn.2010-06.com.nutanix:test-initiator" || ss[0].Target != ds[0].IQN {
		t.Fatalf("session %+v", ss[0])
	}
	sw.set(cvms[1].IP + ":3261")
	if err := cvms[0].Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitSessions(t, cvms[1], 1, 15*time.Second)
	t.Logf("failover: session on %s %v after the kill", cvms[1].Name, time.Since(start).Round(time.Millisecond))

	ctx := context.Background()
	if err := cvms[0].Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cvms[0].Export(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
	sw.set(cvms[0].IP + ":3261")
	time.Sleep(3 * time.Second) // libiscsi refuses reconnects closer than 3 s apart
	n, err := cvms[1].Drop(ctx, func(s Session) bool { return s.Target == ds[0].IQN })
	if err != nil || n != 1 {
		t.Fatalf("dropped %d sessions: %v", n, err)
	}
	start = time.Now()
	waitSessions(t, cvms[0], 1, 15*time.Second)
	waitSessions(t, cvms[1], 0, 5*time.Second)
	t.Logf("failback: session on %s %v after the drop", cvms[0].Name, time.Since(start).Round(time.Millisecond))
}

// An initiator-name allow list refuses every other initiator and ends its
// sessions: the storage side of fencing.
func TestAllowListEndsOtherInitiators(t *testing.T) {
	requireTargets(t)
	cvms, ds := startCVMs(t, 1, "d1")
	url := "iscsi://" + cvms[0].IP + ":3261/" + ds[0].IQN + "/1"
	perf := exec.Command("iscsi-perf", "-i", "iqn.i:old", "-x", "0", "-m", "1", url)
	if err := perf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { perf.Process.Kill(); perf.Wait() }()
	waitSessions(t, cvms[0], 1, 10*time.Second)

	ctx := context.Background()
	if err := cvms[0].Allow(ctx, ds[0].IQN, []string{"iqn.i:new"}); err != nil {
		t.Fatal(err)
	}
	waitSessions(t, cvms[0], 0, 5*time.Second)
	if out, err := exec.Command("iscsi-inq", "-i", "iqn.i:old", url).CombinedOutput(); err == nil {
		t.Fatalf("the fenced initiator still logs in:\n%s", out)
	}
	if out, err := exec.Command("iscsi-inq", "-i", "iqn.i:new", url).CombinedOutput(); err != nil {
		t.Fatalf("the allowed initiator is refused: %v\n%s", err, out)
	}
	if err := cvms[0].Allow(ctx, ds[0].IQN, nil); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("iscsi-inq", "-i", "iqn.i:old", url).CombinedOutput(); err != nil {
		t.Fatalf("with the list cleared the initiator is refused: %v\n%s", err, out)
	}
}

// Alive reads the process table: a SIGKILLed tgtd is dead at once, before
// anything reaps it; a stopped (hung) one is alive.
func TestAliveSeesAnUnreapedCrash(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	bin := filepath.Join(t.TempDir(), "tgtd")
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	c := &CVM{Name: "cvm1"}
	if c.Alive() {
		t.Fatal("a CVM never started is alive")
	}
	c.pid.Store(int64(cmd.Process.Pid))
	if !c.Alive() {
		t.Fatal("a running tgtd is not alive")
	}
	cmd.Process.Signal(syscall.SIGSTOP)
	if !c.Alive() {
		t.Fatal("a stopped tgtd is not alive")
	}
	cmd.Process.Kill()
	for start := time.Now(); c.Alive(); time.Sleep(time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("a killed, unreaped tgtd is still alive")
		}
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", cmd.Process.Pid)); err != nil {
		t.Fatalf("the killed tgtd was reaped before the check: %v", err)
	}
}
