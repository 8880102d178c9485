package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acli-dev/acli/manager/datapath"
	"github.com/acli-dev/acli/manager/datapath/dptest"
	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
)

// requireDatapath skips a data path test whose tools are absent.
func requireDatapath(t *testing.T) {
	t.Helper()
	why := ""
	if err := datapath.Available(); err != nil {
		why = err.Error()
	} else if _, err := os.Stat(dptest.QEMUISCSI); err != nil {
		why = "QEMU's iSCSI driver is not installed (apt-get install qemu-block-extra)"
	} else if err := libvirtharness.Available(); err != nil {
		why = err.Error()
	}
	if why != "" {
		dptest.Missing(t, why)
	}
}

// diskRecords reads the test guest's records off its data disk: sector
// n holds "REC seq=n up=... boot=<id>". It returns the highest seq per
// boot and fails on a record out of place.
func diskRecords(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4<<20) // 13 minutes of records
	n, _ := io.ReadFull(f, b)
	b = b[:n]
	top := map[string]int{}
	for i := 1; (i+1)*512 <= len(b); i++ {
		f := strings.Fields(string(bytes.TrimRight(b[i*512:(i+1)*512], "\x00")))
		if len(f) != 4 || f[0] != "REC" {
			continue
		}
		if f[1] != "seq="+strconv.Itoa(i) {
			t.Fatalf("sector %d holds %s", i, f[1])
		}
		top[f[3]] = max(top[f[3]], i)
	}
	return top
}

// largestGap is the largest uptime gap between the guest's consecutive
// records from sector from on.
func largestGap(t *testing.T, path string, from int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var gap time.Duration
	prev := -1.0
	for i := max(from, 1); (i+1)*512 <= len(b); i++ {
		f := strings.Fields(string(bytes.TrimRight(b[i*512:(i+1)*512], "\x00")))
		if len(f) != 4 || f[0] != "REC" {
			break
		}
		up, _ := strconv.ParseFloat(strings.TrimPrefix(f[2], "up="), 64)
		if prev >= 0 {
			gap = max(gap, time.Duration((up-prev)*float64(time.Second)))
		}
		prev = up
	}
	return gap
}

// qemus counts the QEMU processes running the domain of vmUUID.
func qemus(vmUUID string) int {
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		exe, err := os.Readlink(d + "/exe")
		if err != nil || !strings.Contains(exe, "qemu-system") {
			continue
		}
		if cmd, err := os.ReadFile(d + "/cmdline"); err == nil && bytes.Contains(cmd, []byte(vmUUID)) {
			n++
		}
	}
	return n
}

// Test 7 of the data path (HA fencing end to end): clusterd on libvirt
// with the data path runs a guest writing its counter through iSCSI. Its
// host's libvirtd is SIGKILLed (by PID) while its QEMU keeps running, so
// HA cannot power the VM off there; clusterd fences the old host's
// sessions of the VM's vDisks and restarts the VM elsewhere. On the disk,
// the old copy's last record comes before the new copy's first, and the
// old copy, still running, writes nothing after that.
func TestDatapathHAFence(t *testing.T) {
	requireDatapath(t)
	storage := t.TempDir()
	e := startLibvirtE2E(t, "--libvirt-storage-dir", storage, "--libvirt-datapath")
	g := libvirtharness.GuestT(t)
	ip := dptest.MustNet()
	for i, h := range e.hosts.Hosts {
		e.ok(fmt.Sprintf("host.add %s hypervisor_ip=%s cvm_ip=%s%d libvirt_uri=%s", h.Name, h.Addr, ip, 11+i, h.TCPURI()), "HostAdd: complete")
	}

	l, err := net.Listen("tcp", ip+"30:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Dir(g.Qcow2)))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	e.ok(fmt.Sprintf("image.create guest source_url=http://%s/disk.qcow2 container=default-container image_type=kDiskImage", l.Addr()), "ImageCreate: complete")
	e.ok("vm.create g1 memory=128M", "VmCreate: complete")
	e.ok("vm.disk_create g1 clone_from_image=guest", "DiskCreate: complete")
	e.ok("vm.disk_create g1 create_size=64M", "DiskCreate: complete")
	var disks []struct {
		Uuid string `json:"uuid"`
	}
	data(t, e.addr, &disks, "vm.disk_list", "g1")
	if len(disks) != 2 {
		t.Fatalf("vm g1 has %d disks, want 2", len(disks))
	}
	dataDisk := filepath.Join(storage, "default-container", "vdisks", disks[1].Uuid)
	e.ok("vm.on g1", "VmPowerOn: complete")
	id, _, src := e.vm("g1")
	var old string
	waitFor(t, "30 records through the data path", 3*time.Minute, func() bool {
		for boot, top := range diskRecords(t, dataDisk) {
			old = boot
			return top >= 30
		}
		return false
	})
	if n := qemus(id); n != 1 {
		t.Fatalf("%d QEMUs run g1", n)
	}

	// clusterd restarts while the guest writes: the CVM targets belong to
	// the hosts and keep serving (the guest's counter goes on while clusterd
	// is down), and the next clusterd adopts them by their recorded PIDs.
	targets := func() string {
		b, err := os.ReadFile(filepath.Join(e.dir, "datapath", "targets.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			CVMs []struct {
				PID int `json:"pid"`
			} `json:"cvms"`
		}
		if err := json.Unmarshal(b, &rec); err != nil || len(rec.CVMs) != 3 {
			t.Fatalf("targets.json: %v\n%s", err, b)
		}
		return fmt.Sprint(rec.CVMs)
	}
	pids := targets()
	from := diskRecords(t, dataDisk)[old]
	e.stopClusterd()
	waitFor(t, "10 records while clusterd is down", time.Minute, func() bool { return diskRecords(t, dataDisk)[old] >= from+10 })
	e.startClusterd()
	if got := targets(); got != pids {
		t.Fatalf("CVM targets after the restart %s, want the adopted %s", got, pids)
	}
	e.runsOn("g1", src)
	waitFor(t, "10 records after the restart", time.Minute, func() bool { return diskRecords(t, dataDisk)[old] >= from+20 })
	restartGap := largestGap(t, dataDisk, from)
	t.Logf("clusterd restarted while the guest wrote: largest write gap %v", restartGap)
	if restartGap > 3*time.Second {
		t.Errorf("writes stalled %v while clusterd restarted", restartGap)
	}

	killed := time.Now()
	for _, h := range e.hosts.Hosts {
		if h.Name == src {
			if err := h.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Watch the disk: when the old copy's last record lands, when the new
	// copy's first does, and how far the old copy had got by then.
	var lastOld, firstNew time.Time
	oldTop, oldAtNew := 0, 0
	waitFor(t, "HA restarting g1 elsewhere and its new copy writing 20 records", 3*time.Minute, func() bool {
		top := diskRecords(t, dataDisk)
		if top[old] > oldTop {
			oldTop, lastOld = top[old], time.Now()
		}
		for boot, n := range top {
			if boot == old {
				continue
			}
			if firstNew.IsZero() {
				firstNew, oldAtNew = time.Now(), oldTop
			}
			return n >= 20
		}
		return false
	})
	_, power, dst := e.vm("g1")
	if power != "kOn" || dst == src || dst == "" {
		t.Fatalf("g1 after HA: %s on %q, want on another host than %s", power, dst, src)
	}
	// The old copy still runs on the host whose daemon died (so it was not
	// its death that stopped its writes) and still writes nothing.
	time.Sleep(3 * time.Second)
	if top := diskRecords(t, dataDisk); top[old] != oldAtNew {
		t.Fatalf("the old copy's records went on from %d to %d after the new copy started: two writers", oldAtNew, top[old])
	}
	if n := qemus(id); n != 2 {
		t.Fatalf("%d QEMUs run g1, want the fenced old copy and the new one", n)
	}
	t.Logf("HA fence: libvirtd of %s killed; the old copy's last record %v after, the new copy (on %s) first wrote %v after; the old copy stopped at record %d and still runs",
		src, lastOld.Sub(killed).Round(10*time.Millisecond), dst, firstNew.Sub(killed).Round(10*time.Millisecond), oldAtNew)
}

// A volume group's vDisks on the libvirt data path (test 6 through
// clusterd): attached to an external initiator, whose libiscsi tools log
// in through the data services IP. vg.list_sessions names, for each
// session, the CVM the initiator is really connected to (ss), one per
// CVM; a killed CVM's session moves, and the listing follows; once the
// CVM is back the session returns to it.
func TestDatapathVolumeGroupSessions(t *testing.T) {
	requireDatapath(t)
	if _, err := exec.LookPath("iscsi-perf"); err != nil {
		dptest.Missing(t, "iscsi-perf not installed (apt-get install libiscsi-bin)")
	}
	ip := dptest.MustNet()
	e := startLibvirtE2E(t, "--libvirt-storage-dir", t.TempDir(), "--libvirt-datapath",
		"--libvirt-data-services-ip", ip+"20", "--libvirt-cvm-restart", "2s")
	for i, h := range e.hosts.Hosts {
		e.ok(fmt.Sprintf("host.add %s hypervisor_ip=%s cvm_ip=%s%d libvirt_uri=%s", h.Name, h.Addr, ip, 11+i, h.TCPURI()), "HostAdd: complete")
	}
	e.ok("vg.create data", "complete")
	for range 3 {
		e.ok("vg.disk_create data create_size=16M", "complete")
	}
	e.ok("vg.attach_external data "+client1, "complete")
	type session struct {
		Target string `json:"target_iqn"`
		CvmIP  string `json:"cvm_ip"`
	}
	list := func() map[string]string {
		var ss []session
		data(t, e.addr, &ss, "vg.list_sessions", "data")
		out := map[string]string{}
		for _, s := range ss {
			out[s.Target] = s.CvmIP
		}
		return out
	}
	listed := list()
	if len(listed) != 3 {
		t.Fatalf("vg.list_sessions data: %v, want 3 sessions", listed)
	}
	// Each vDisk is exported on the CVMs once clusterd has handed it to the
	// data path: a login through the data services IP then succeeds.
	for target := range listed {
		waitFor(t, target+" served through the data services IP", 30*time.Second, func() bool {
			return exec.Command("iscsi-inq", "-i", client1, "iscsi://"+ip+"20:3260/"+target+"/1").Run() == nil
		})
	}
	// One libiscsi initiator per vDisk, logging in at the data services IP.
	byPID := map[int]string{}
	for target := range listed {
		cmd := exec.Command("iscsi-perf", "-i", client1, "-x", "1000", "-m", "1", "iscsi://"+ip+"20:3260/"+target+"/1")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		byPID[cmd.Process.Pid] = target
	}
	// connected is the CVM each initiator is connected to, from ss.
	connected := func() map[string]string {
		out, err := exec.Command("ss", "-Htnp", "state", "established", "( dport = :3205 )").Output()
		if err != nil {
			t.Fatalf("ss: %v", err)
		}
		on := map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			for pid, target := range byPID {
				if strings.Contains(line, "pid="+strconv.Itoa(pid)+",") {
					on[target], _, _ = strings.Cut(f[len(f)-2], ":")
				}
			}
		}
		return on
	}
	agree := func(what string, ok func(map[string]string) bool) map[string]string {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			on, listed := connected(), list()
			good := len(on) == 3 && ok(on)
			for target, cvm := range on {
				good = good && listed[target] == cvm
			}
			if good {
				return on
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s; connected %v, listed %v", what, on, listed)
			}
		}
	}
	spread := func(on map[string]string) bool {
		seen := map[string]bool{}
		for _, cvm := range on {
			seen[cvm] = true
		}
		return len(seen) == 3
	}
	on := agree("one session per CVM, as vg.list_sessions says", spread)

	// The CVM serving the first vDisk crashes (its tgtd SIGKILLed by the PID
	// clusterd recorded).
	var first string
	for target := range on {
		if first == "" || target < first {
			first = target
		}
	}
	victim := on[first]
	b, err := os.ReadFile(filepath.Join(e.dir, "datapath", "targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		CVMs []struct {
			IP  string `json:"ip"`
			PID int    `json:"pid"`
		} `json:"cvms"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, c := range rec.CVMs {
		if c.IP == victim {
			pid = c.PID
		}
	}
	if pid == 0 {
		t.Fatalf("no recorded target of CVM %s in %s", victim, b)
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	agree("the killed CVM's session on another CVM, as vg.list_sessions says", func(on map[string]string) bool {
		return on[first] != victim
	})
	moved := time.Since(killed)
	// Restarted after 2 s, the CVM gets its session back.
	agree("the session back on its CVM, as vg.list_sessions says", func(on map[string]string) bool {
		return on[first] == victim && spread(on)
	})
	t.Logf("volume group: 1/1/1 over the CVMs; a killed CVM's session moved in %v and came back %v after the kill",
		moved.Round(10*time.Millisecond), time.Since(killed).Round(10*time.Millisecond))
}
