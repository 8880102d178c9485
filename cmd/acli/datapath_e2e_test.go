package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	e.ok("vm.disk_create g1 clone_from_image=guest", "VmDiskCreate: complete")
	e.ok("vm.disk_create g1 create_size=64M", "VmDiskCreate: complete")
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
