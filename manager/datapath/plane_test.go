package datapath

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/acli-dev/acli/manager/datapath/dptest"
)

// startPlane runs a 3-host data path on testNet (redirectors .1-.3,
// CVMs .11-.13, data services IP .20) exporting the named vDisks.
func startPlane(t testing.TB, disks ...string) (*Plane, []Disk) {
	t.Helper()
	return startPlaneWith(t, func(*Config) {}, disks...)
}

// startPlaneWith is startPlane with settings of the test's own.
func startPlaneWith(t testing.TB, set func(*Config), disks ...string) (*Plane, []Disk) {
	t.Helper()
	requireTargets(t)
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
	cfg := Config{Dir: dir, DataServicesIP: testNet + "20", HealthInterval: 200 * time.Millisecond}
	for i := range 3 {
		cfg.Hosts = append(cfg.Hosts, HostConfig{Name: fmt.Sprintf("h%d", i+1),
			RedirectorIP: fmt.Sprintf("%s%d", testNet, 1+i), CVMIP: fmt.Sprintf("%s%d", testNet, 11+i)})
	}
	set(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := Start(ctx, cfg, ds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p, ds
}

// initiate runs a libiscsi initiator (iscsi-perf, reading, reconnecting
// through the portal it dialled) until the test ends.
func initiate(t testing.TB, name, portal string, d Disk) {
	t.Helper()
	cmd := exec.Command("iscsi-perf", "-i", name, "-x", "1000", "-m", "1", "iscsi://"+portal+"/"+d.IQN+"/1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// spread counts the sessions each CVM serves.
func spread(t testing.TB, p *Plane) [3]int {
	t.Helper()
	var n [3]int
	for i, h := range []string{"h1", "h2", "h3"} {
		if !p.Up(h) {
			continue
		}
		ss, err := p.CVM(h).Sessions(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n[i] = len(ss)
	}
	return n
}

func waitSpread(t testing.TB, p *Plane, want [3]int, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := spread(t, p)
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("sessions per CVM %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A volume group of 3 vDisks attached through the data services IP gets
// one session per CVM; a killed CVM's session moves to another CVM, and
// back once the CVM has returned (ending the temporary session).
func TestVolumeGroupSpreadFailoverFailback(t *testing.T) {
	p, ds := startPlane(t, "vg-d1", "vg-d2", "vg-d3")
	for _, d := range ds {
		initiate(t, "iqn.1994-05.com.redhat:client1", p.DataServices(), d)
	}
	waitSpread(t, p, [3]int{1, 1, 1}, 15*time.Second)

	if err := p.StopCVM("h2"); err != nil {
		t.Fatal(err)
	}
	// manager/iscsi's failover: the least-loaded up CVM, the lowest IP on a tie.
	took := waitSpread(t, p, [3]int{2, 0, 1}, 15*time.Second)
	t.Logf("h2's session on h1 %v after the kill", took.Round(time.Millisecond))
	if p.Up("h2") {
		t.Fatal("the plane still sees h2's CVM up")
	}

	if err := p.StartCVM(context.Background(), "h2"); err != nil {
		t.Fatal(err)
	}
	took = waitSpread(t, p, [3]int{1, 1, 1}, 15*time.Second)
	t.Logf("failback to h2 %v after its CVM returned", took.Round(time.Millisecond))
}

// Sessions that ended no longer weigh on where new ones go: an external
// initiator's session through the data services IP lands on h1 (all CVMs
// idle, the lowest IP); once it has ended and the plane has forgotten it,
// another initiator's session lands on h1 again, not on h2 as it would
// while the ended one still counted.
func TestEndedSessionsDoNotWeigh(t *testing.T) {
	p, ds := startPlaneWith(t, func(c *Config) { c.EndedAfter = time.Second }, "d1", "d2")
	cmd := exec.Command("iscsi-perf", "-i", "iqn.1994-05.com.redhat:gone", "-x", "1000", "-m", "1",
		"iscsi://"+p.DataServices()+"/"+ds[0].IQN+"/1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitSpread(t, p, [3]int{1, 0, 0}, 15*time.Second)
	cmd.Process.Kill()
	cmd.Wait()
	waitSpread(t, p, [3]int{0, 0, 0}, 15*time.Second)
	took := time.Now()
	for routed := 1; routed > 0; {
		p.mu.Lock()
		routed = len(p.sessions)
		p.mu.Unlock()
		if time.Since(took) > 10*time.Second {
			t.Fatalf("the plane still routes %d ended sessions", routed)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("ended session forgotten %v after it ended", time.Since(took).Round(time.Millisecond))
	initiate(t, "iqn.1994-05.com.redhat:next", p.DataServices(), ds[1])
	waitSpread(t, p, [3]int{1, 0, 0}, 15*time.Second)
}

// A host's redirector sends its VMs to its own CVM; when that CVM hangs
// (SIGSTOP: it keeps its sockets but answers nothing) the plane's control
// socket check marks it down and new logins go to another CVM.
func TestHungCVMIsRoutedAround(t *testing.T) {
	p, ds := startPlane(t, "d1")
	url := "iscsi://" + p.Redirector("h1") + "/" + ds[0].IQN + "/1"
	if out, err := exec.Command("iscsi-inq", url).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := p.CVM("h1").Hang(true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for p.Up("h1") {
		if time.Since(start) > 10*time.Second {
			t.Fatal("a hung CVM is still up after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("hung CVM down after %v", time.Since(start).Round(time.Millisecond))
	// The plane moved iscsi-inq's session (ended since; it cannot tell) to
	// h2 on failover, so the least-loaded up CVM is h3's.
	initiate(t, InitiatorName("vm1", "h1"), p.Redirector("h1"), ds[0])
	waitSpread(t, p, [3]int{0, 0, 1}, 15*time.Second)
	if err := p.CVM("h1").Hang(false); err != nil {
		t.Fatal(err)
	}
	took := waitSpread(t, p, [3]int{1, 0, 0}, 15*time.Second)
	t.Logf("failback to the resumed CVM in %v", took.Round(time.Millisecond))
}

// Fencing a host for a VM ends that host's sessions of the VM's vDisks on
// every CVM and refuses its logins, at the redirector and at the targets,
// while the VM's copy on another host keeps working.
func TestFenceRefusesTheOldHost(t *testing.T) {
	p, ds := startPlane(t, "d1")
	old, next := InitiatorName("vm1", "h1"), InitiatorName("vm1", "h2")
	initiate(t, old, p.Redirector("h1"), ds[0])
	waitSpread(t, p, [3]int{1, 0, 0}, 15*time.Second)

	ctx := context.Background()
	if err := p.Fence(ctx, "vm1", "h1", []string{ds[0].IQN}); err != nil {
		t.Fatal(err)
	}
	if n := spread(t, p); n != [3]int{0, 0, 0} {
		t.Fatalf("after the fence, sessions per CVM %v", n)
	}
	for _, portal := range []string{p.Redirector("h1"), p.hosts[0].CVMIP + ":3261", p.hosts[2].CVMIP + ":3205"} {
		if out, err := exec.Command("iscsi-inq", "-i", old, "iscsi://"+portal+"/"+ds[0].IQN+"/1").CombinedOutput(); err == nil {
			t.Fatalf("the fenced initiator logs in at %s:\n%s", portal, out)
		}
	}
	if out, err := exec.Command("iscsi-inq", "-i", next, "iscsi://"+p.Redirector("h2")+"/"+ds[0].IQN+"/1").CombinedOutput(); err != nil {
		t.Fatalf("the new host's copy is refused: %v\n%s", err, out)
	}
	// A CVM restarted while the fence holds keeps it.
	p.StopCVM("h3")
	if err := p.StartCVM(ctx, "h3"); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("iscsi-inq", "-i", old, "iscsi://"+p.hosts[2].CVMIP+":3261/"+ds[0].IQN+"/1").CombinedOutput(); err == nil {
		t.Fatalf("a restarted CVM forgot the fence:\n%s", out)
	}
	if err := p.Unfence(ctx, "vm1", "h1", []string{ds[0].IQN}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("iscsi-inq", "-i", old, "iscsi://"+p.Redirector("h1")+"/"+ds[0].IQN+"/1").CombinedOutput(); err != nil {
		t.Fatalf("unfenced, the host is still refused: %v\n%s", err, out)
	}
}

// A host joins and leaves the data path at run time; a crashed CVM target
// is restarted after RestartAfter, with its exports, under a new PID.
func TestHostsJoinAndCVMsRestart(t *testing.T) {
	requireTargets(t)
	ctx := context.Background()
	dir := t.TempDir()
	p, err := Start(ctx, Config{Dir: dir, RestartAfter: 200 * time.Millisecond, HealthInterval: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.AddHost(ctx, HostConfig{Name: "h1", RedirectorIP: testNet + "1", CVMIP: "nope"}); err == nil {
		t.Fatal("a host with a bad CVM IP joined")
	}
	if err := p.AddHost(ctx, HostConfig{Name: "h1", RedirectorIP: testNet + "1", CVMIP: testNet + "11"}); err != nil {
		t.Fatal(err)
	}
	if err := p.AddHost(ctx, HostConfig{Name: "h1", RedirectorIP: testNet + "2", CVMIP: testNet + "12"}); err == nil {
		t.Fatal("a host joined twice")
	}
	f := filepath.Join(dir, "d1")
	os.WriteFile(f, make([]byte, 1<<20), 0o644)
	d := Disk{IQN: VDiskIQN("d1"), Path: f, ID: "d1"}
	if err := p.Export(ctx, d); err != nil {
		t.Fatal(err)
	}
	pid := p.CVM("h1").PID()
	if err := p.StopCVM("h1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !p.Up("h1") {
		if time.Now().After(deadline) {
			t.Fatal("the crashed CVM was not restarted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.CVM("h1").PID() == pid {
		t.Fatal("same PID after a restart")
	}
	url := "iscsi://" + p.Redirector("h1") + "/" + d.IQN + "/1"
	if out, err := exec.Command("iscsi-inq", url).CombinedOutput(); err != nil {
		t.Fatalf("the restarted CVM does not serve its export: %v\n%s", err, out)
	}
	if err := p.RemoveHost("h1"); err != nil {
		t.Fatal(err)
	}
	if p.CVM("h1") != nil || p.Redirector("h1") != "" {
		t.Fatal("a removed host keeps its data path")
	}
	if out, err := exec.Command("iscsi-inq", url).CombinedOutput(); err == nil {
		t.Fatalf("a removed host's redirector still answers:\n%s", out)
	}
}

// The CVM targets outlive the plane (clusterd restarting): a detached
// plane leaves them serving, with their sessions; the next plane on the
// same Dir adopts them by PID, sees a crash of one (not its child: by
// polling) and moves its session; StopRecorded stops what a detached
// plane left, by PID.
func TestTargetsOutliveThePlane(t *testing.T) {
	p, ds := startPlaneWith(t, func(c *Config) { c.EndedAfter = time.Hour }, "d1")
	initiate(t, InitiatorName("vm1", "h1"), p.Redirector("h1"), ds[0])
	waitSpread(t, p, [3]int{1, 0, 0}, 15*time.Second)
	var pids []int
	for _, h := range []string{"h1", "h2", "h3"} {
		pids = append(pids, p.CVM(h).PID())
	}
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) != nil {
			t.Fatalf("tgtd %d stopped with the plane", pid)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p2, err := Start(ctx, p.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p2.Close() })
	for i, h := range []string{"h1", "h2", "h3"} {
		if got := p2.CVM(h).PID(); got != pids[i] {
			t.Fatalf("%s's target after the restart: pid %d, want the adopted %d", h, got, pids[i])
		}
	}
	if n := spread(t, p2); n != [3]int{1, 0, 0} {
		t.Fatalf("sessions per CVM after the restart %v, want the one on h1 kept", n)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for p2.Up("h1") {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the adopted target's crash was not seen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	seen := time.Since(start)
	took := waitSpread(t, p2, [3]int{0, 1, 0}, 15*time.Second)
	t.Logf("an adopted target's crash: seen in %v, its session moved %v later", seen.Round(time.Millisecond), took.Round(time.Millisecond))
	// Started again by the new plane, it serves the exports the old one
	// recorded, and the session fails back to it.
	if err := p2.StartCVM(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	waitSpread(t, p2, [3]int{1, 0, 0}, 15*time.Second)
	pids[0] = p2.CVM("h1").PID()

	if err := p2.Detach(); err != nil {
		t.Fatal(err)
	}
	stopped, err := StopRecorded(p.cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(stopped)
	if want := slices.Sorted(slices.Values(pids)); !slices.Equal(stopped, want) {
		t.Fatalf("StopRecorded stopped %v, want %v", stopped, want)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil && !dptest.Zombie(pid) {
			t.Fatalf("tgtd %d still runs", pid)
		}
	}
}

// BenchmarkPlaneRoute is the plane's answer to one login through a host's
// redirector, including the check of every up CVM's tgtd in the process
// table that spots a crash before it is reaped.
func BenchmarkPlaneRoute(b *testing.B) {
	p, ds := startPlane(b, "d1")
	l := Login{Initiator: InitiatorName("vm1", "h1"), Target: ds[0].IQN}
	for b.Loop() {
		if _, err := p.route(0, l); err != nil {
			b.Fatal(err)
		}
	}
}
