package libvirt

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/datapath"
	"github.com/acli-dev/acli/manager/datapath/dptest"
	"github.com/acli-dev/acli/manager/driver"
)

// Data path addresses, a /24 of this run's own: redirectors .1-.3, CVMs
// .11-.13, DSIP .20.
var dpNet = dptest.MustNet()

func requireDatapath(t testing.TB) {
	t.Helper()
	why := ""
	if err := datapath.Available(); err != nil {
		why = err.Error()
	} else if _, err := os.Stat(dptest.QEMUISCSI); err != nil {
		why = "QEMU's iSCSI driver is not installed (apt-get install qemu-block-extra)"
	} else if _, err := exec.LookPath("iscsi-perf"); err != nil {
		why = "iscsi-perf not installed (apt-get install libiscsi-bin)"
	}
	if why != "" {
		dptest.Missing(t, why)
	}
}

// recordsSince reads the guest's counter from sector from+1 on and returns
// the last contiguous record and the largest uptime gap between two
// consecutive records from sector from on.
func recordsSince(t testing.TB, path string, from int) (last int, gap time.Duration) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sec := make([]byte, 512)
	prev := -1.0
	for i := max(from, 1); ; i++ {
		if _, err := f.ReadAt(sec, int64(i)*512); err != nil {
			return last, gap
		}
		fields := strings.Fields(string(bytes.TrimRight(sec, "\x00")))
		if len(fields) != 4 || fields[0] != "REC" || fields[1] != "seq="+strconv.Itoa(i) {
			return last, gap
		}
		up, _ := strconv.ParseFloat(strings.TrimPrefix(fields[2], "up="), 64)
		if prev >= 0 {
			gap = max(gap, time.Duration((up-prev)*float64(time.Second)))
		}
		prev, last = up, i
	}
}

// waitRecords waits until the guest has written n more records.
func waitRecords(t testing.TB, path string, n int, d time.Duration) int {
	t.Helper()
	start, _ := recordsSince(t, path, 1)
	deadline := time.Now().Add(d)
	for {
		last, _ := recordsSince(t, path, 1)
		if last >= start+n {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guest's counter stays at %d (was %d %v ago)", last, start, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// servedBy names the host whose CVM serves the initiator's session of
// target, waiting until exactly one does.
func servedBy(t testing.TB, p *datapath.Plane, hosts []string, initiator, target string, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var on []string
		for _, h := range hosts {
			if !p.Up(h) {
				continue
			}
			ss, err := p.CVM(h).Sessions(context.Background())
			if err != nil {
				continue // hung, not yet seen down
			}
			for _, s := range ss {
				if s.Initiator == initiator && s.Target == target {
					on = append(on, h)
				}
			}
		}
		if len(on) == 1 && (want == "" || on[0] == want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session of %s to %s on CVMs %v, want one on %q", initiator, target, on, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDatapathGuest: a real guest whose vDisks are iSCSI LUNs behind its
// host's redirector boots and writes its fsync'd counter; its CVM is
// killed (SIGKILL) and the session moves to another CVM, the CVM comes
// back and the session fails back, the CVM hangs (SIGSTOP) and the stall
// is bounded by QEMU's keep-alive, the guest migrates A->B->A and its
// sessions follow the host's CVM, a fence of its host stops its writes
// while it runs and lifting it lets them resume; through all of it no
// record is lost,
// no I/O error reaches the guest. A volume group of 3 vDisks attached
// through the data services IP is spread one session per CVM. The last
// line gives the figures.
func TestDatapathGuest(t *testing.T) {
	requireDatapath(t)
	c := hosts(t)
	var names []string
	cfg := datapath.Config{Dir: t.TempDir(), DataServicesIP: dpNet + "20"}
	for i, h := range c.Hosts {
		names = append(names, h.Name)
		cfg.Hosts = append(cfg.Hosts, datapath.HostConfig{Name: h.Name,
			RedirectorIP: dpNet + strconv.Itoa(1+i), CVMIP: dpNet + strconv.Itoa(11+i)})
	}
	ctx := context.Background()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	plane, err := datapath.Start(sctx, cfg, nil)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer plane.Close()

	st := Storage{Dir: t.TempDir(), DataPath: plane}
	vm := guestVM(t, st)
	conns := []*Conn{dial(t, c.Hosts[0].UnixURI()), dial(t, c.Hosts[1].UnixURI())}
	cleanupDomain(t, vm.Uuid, conns...)
	spec := VmDomainSpec(vm, st)
	if err := st.onHost(ctx, &spec, vm.Uuid, names[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := conns[0].Define(spec); err != nil {
		t.Fatal(err)
	}
	if err := conns[0].Start(vm.Uuid); err != nil {
		t.Fatal(err)
	}
	con := st.ConsolePath(vm.Uuid)
	waitConsole(t, con, "HB 1 ", 3*time.Minute)
	waitConsole(t, con, "HB 10 ", time.Minute)
	data := st.VolumePath("default-container", vm.Disks[1].Uuid)
	target := datapath.VDiskIQN(vm.Disks[1].Uuid)
	servedBy(t, plane, names, datapath.InitiatorName(vm.Uuid, names[0]), target, names[0])
	waitRecords(t, data, 10, time.Minute)

	// Failover: h1's CVM crashes (SIGKILL by PID, behind the plane's back):
	// QEMU's first reconnect must already be sent elsewhere.
	from, _ := recordsSince(t, data, 1)
	if err := syscall.Kill(plane.CVM(names[0]).PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	servedBy(t, plane, names, datapath.InitiatorName(vm.Uuid, names[0]), target, "")
	waitRecords(t, data, 20, time.Minute)
	_, failover := recordsSince(t, data, from)
	t.Logf("failover: largest write gap %v", failover)

	// Failback: the CVM returns; the plane ends the temporary session.
	from, _ = recordsSince(t, data, 1)
	if err := plane.StartCVM(ctx, names[0]); err != nil {
		t.Fatal(err)
	}
	servedBy(t, plane, names, datapath.InitiatorName(vm.Uuid, names[0]), target, names[0])
	waitRecords(t, data, 20, time.Minute)
	_, failback := recordsSince(t, data, from)
	t.Logf("failback: largest write gap %v", failback)

	// A hung CVM (SIGSTOP) answers nothing but keeps its connections: QEMU
	// notices by its NOP-Out keep-alive and reconnects through the
	// redirector, which the plane has turned away from the hung CVM.
	from, _ = recordsSince(t, data, 1)
	if err := plane.CVM(names[0]).Hang(true); err != nil {
		t.Fatal(err)
	}
	servedBy(t, plane, names, datapath.InitiatorName(vm.Uuid, names[0]), target, "")
	waitRecords(t, data, 20, time.Minute)
	_, hung := recordsSince(t, data, from)
	t.Logf("hung CVM: largest write gap %v", hung)
	if hung > 30*time.Second {
		t.Errorf("a hung CVM stalled writes %v, more than the keep-alive bound", hung)
	}
	if err := plane.CVM(names[0]).Hang(false); err != nil {
		t.Fatal(err)
	}
	servedBy(t, plane, names, datapath.InitiatorName(vm.Uuid, names[0]), target, names[0])
	waitRecords(t, data, 10, time.Minute)

	// Live migration A->B->A with the disks re-pointed at the destination's redirector.
	var migration time.Duration
	for i, hop := range []struct{ from, to int }{{0, 1}, {1, 0}} {
		from, _ := recordsSince(t, data, 1)
		x, err := DestXML(conns[hop.from], plane, vm.Uuid, names[hop.from], names[hop.to])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(x, "'"+dpNet+strconv.Itoa(1+hop.to)+"'") {
			t.Fatalf("destination XML does not name %s's redirector:\n%s", names[hop.to], x)
		}
		res, err := conns[hop.from].Migrate(ctx, vm.Uuid, MigrateOptions{DestURI: c.Hosts[hop.to].TCPURI(),
			Dest: conns[hop.to], SharedDisks: true, DestXML: x})
		if err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
		servedBy(t, plane, names, datapath.InitiatorName(vm.Uuid, names[hop.to]), target, names[hop.to])
		waitRecords(t, data, 15, time.Minute)
		_, gap := recordsSince(t, data, from)
		migration = max(migration, gap)
		t.Logf("migration %d to %s: %v, downtime %v, largest write gap %v", i+1, names[hop.to],
			res.Elapsed.Round(time.Millisecond), res.Downtime, gap)
	}

	// clusterd restarts: its plane detaches (the redirectors go, the CVM
	// targets keep serving) and the guest writes on meanwhile; the next
	// plane adopts the same targets by PID. Then a crash of the serving
	// target (not the new plane's child) still fails over.
	from, _ = recordsSince(t, data, 1)
	var pids []int
	for _, h := range names {
		pids = append(pids, plane.CVM(h).PID())
	}
	if err := plane.Detach(); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, data, 20, time.Minute)
	sctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	plane, err = datapath.Start(sctx, cfg, nil)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer plane.Close()
	for i, h := range names {
		if got := plane.CVM(h).PID(); got != pids[i] {
			t.Fatalf("%s's target after the restart: pid %d, want the adopted %d", h, got, pids[i])
		}
	}
	servedBy(t, plane, names, datapath.InitiatorName(vm.Uuid, names[0]), target, names[0])
	waitRecords(t, data, 10, time.Minute)
	_, restart := recordsSince(t, data, from)
	t.Logf("clusterd restart: largest write gap %v", restart)
	if restart > 3*time.Second {
		t.Errorf("writes stalled %v while the plane restarted", restart)
	}
	from, _ = recordsSince(t, data, 1)
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	servedBy(t, plane, names, datapath.InitiatorName(vm.Uuid, names[0]), target, "")
	waitRecords(t, data, 20, time.Minute)
	_, adoptedFailover := recordsSince(t, data, from)
	t.Logf("failover from an adopted target: largest write gap %v", adoptedFailover)
	if err := plane.StartCVM(ctx, names[0]); err != nil {
		t.Fatal(err)
	}
	servedBy(t, plane, names, datapath.InitiatorName(vm.Uuid, names[0]), target, names[0])

	// Fencing (HA's storage fence): once the CVMs refuse h1's sessions of
	// the VM's vDisks, the copy on h1 keeps running but no write of it
	// reaches the disk; unfenced, it reconnects and writes again.
	targets := []string{datapath.VDiskIQN(vm.Disks[0].Uuid), target}
	fence := time.Now()
	if err := plane.Fence(ctx, vm.Uuid, names[0], targets); err != nil {
		t.Fatal(err)
	}
	t.Logf("fence took %v", time.Since(fence).Round(time.Millisecond))
	fenced, _ := recordsSince(t, data, 1)
	time.Sleep(3 * time.Second)
	if after, _ := recordsSince(t, data, 1); after > fenced {
		t.Fatalf("records %d..%d reached the disk after the fence", fenced+1, after)
	}
	if dom, err := conns[0].Lookup(vm.Uuid); err != nil || !dom.State.Active() {
		t.Fatalf("the fenced copy should still run: %+v %v", dom, err)
	}
	if err := plane.Unfence(ctx, vm.Uuid, names[0], targets); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, data, 10, time.Minute)

	last, _ := recordsSince(t, data, 1)
	if n, _ := records(t, data); n != last {
		t.Fatalf("records: %d contiguous, %d read", n, last)
	}
	log, _ := os.ReadFile(con)
	if bytes.Contains(log, []byte("WRERR")) || bytes.Contains(log, []byte("I/O error")) {
		t.Fatalf("the guest saw write errors:\n%s", log)
	}

	spread := vgSpread(t, plane, names, st.Dir)
	t.Logf("hung CVM stall %.2f s", hung.Seconds())
	fmt.Printf("datapath: failover stall %.2f s, failback %.2f s, migration gap %.2f s, vg spread %s\n",
		failover.Seconds(), failback.Seconds(), migration.Seconds(), spread)
}

// vgSpread attaches 3 vDisks to an external initiator (libiscsi's
// iscsi-perf) through the data services IP and reports the sessions per
// CVM, as a/b/c.
func vgSpread(t testing.TB, p *datapath.Plane, hosts []string, dir string) string {
	t.Helper()
	ctx := context.Background()
	var iqns []string
	for i := range 3 {
		path := filepath.Join(dir, fmt.Sprintf("vg-%d", i))
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Truncate(path, 16<<20)
		d := datapath.Disk{IQN: datapath.VDiskIQN(fmt.Sprintf("vg-%d", i)), Path: path, ID: fmt.Sprintf("vg%d", i)}
		if err := p.Export(ctx, d); err != nil {
			t.Fatal(err)
		}
		iqns = append(iqns, d.IQN)
		cmd := exec.Command("iscsi-perf", "-i", "iqn.1994-05.com.redhat:client1", "-x", "1000", "-m", "1",
			"iscsi://"+p.DataServices()+"/"+d.IQN+"/1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n []string
		total := 0
		for _, h := range hosts {
			ss, err := p.CVM(h).Sessions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			k := len(slices.DeleteFunc(ss, func(s datapath.Session) bool { return !slices.Contains(iqns, s.Target) }))
			n, total = append(n, strconv.Itoa(k)), total+k
		}
		if total == 3 {
			s := strings.Join(n, "/")
			if s != "1/1/1" {
				t.Errorf("volume group sessions per CVM %s, want 1/1/1", s)
			}
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("volume group sessions per CVM %v", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDatapathDriverRunsCVMs: a driver with a data path starts a CVM
// target and a redirector for each host that joins with a cvm_ip, turns a
// crashed CVM into CvmDown and its restart into CvmUp for the manager,
// and stops every target, by PID, when a host leaves and when it closes.
func TestDatapathDriverRunsCVMs(t *testing.T) {
	requireDatapath(t)
	c := hosts(t)
	d := NewDriver(Config{HeartbeatInterval: 200 * time.Millisecond,
		DataPath: &datapath.Config{Dir: t.TempDir(), RestartAfter: 300 * time.Millisecond}})
	events, err := d.Start(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cvmEvents := make(chan driver.HostEvent, 16)
	go func() {
		for ev := range events {
			if ev.Kind == driver.CvmDown || ev.Kind == driver.CvmUp {
				cvmEvents <- ev
			}
		}
		close(cvmEvents)
	}()
	var ids []string
	for i, h := range c.Hosts[:2] {
		joined, err := d.JoinHost(ctxTimeout(t, 30*time.Second), &acliv1.Host{Name: h.Name, HypervisorIp: h.Addr,
			CvmIp: dpNet + strconv.Itoa(11+i), LibvirtUri: h.TCPURI()})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, joined.Uuid)
	}
	plane := d.dp.plane
	if got := plane.Redirector(c.Hosts[0].Name); got != c.Hosts[0].Addr+":3261" {
		t.Fatalf("h1's redirector on %q, want its hypervisor address", got)
	}
	next := func(want driver.EventKind) driver.HostEvent {
		t.Helper()
		for {
			select {
			case ev := <-cvmEvents:
				if ev.Kind == want && ev.HostUUID == ids[0] {
					return ev
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("no %v event for %s", want, c.Hosts[0].Name)
			}
		}
	}
	pid := plane.CVM(c.Hosts[0].Name).PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ev := next(driver.CvmDown); ev.Reason == "" {
		t.Fatal("CvmDown without a reason")
	}
	next(driver.CvmUp)
	if p := plane.CVM(c.Hosts[0].Name).PID(); p == pid || p == 0 {
		t.Fatalf("after the restart tgtd's PID is %d (was %d)", p, pid)
	}

	left := plane.CVM(c.Hosts[1].Name).PID()
	if err := d.LeaveHost(ids[1]); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(left, 0) == nil && !dptest.Zombie(left) {
		t.Fatalf("tgtd %d of a host that left still runs", left)
	}
	last := plane.CVM(c.Hosts[0].Name).PID()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(last, 0) == nil && !dptest.Zombie(last) {
		t.Fatalf("tgtd %d still runs after Close", last)
	}
}
