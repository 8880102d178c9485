package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
)

// guestRecords counts the contiguous "REC seq=n" records the test guest
// wrote to sectors 1.. of its data disk, failing on one out of place.
func guestRecords(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 1; (i+1)*512 <= len(b); i++ {
		f := strings.Fields(string(bytes.TrimRight(b[i*512:(i+1)*512], "\x00")))
		if len(f) < 2 || f[0] != "REC" {
			if bytes.HasPrefix(b[(i+1)*512:], []byte("REC")) {
				t.Fatalf("record %d missing but %d present", i, i+1)
			}
			return n
		}
		if f[1] != "seq="+strconv.Itoa(i) {
			t.Fatalf("sector %d holds %s", i, f[1])
		}
		n = i
	}
	return n
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// The path on real libvirtd hosts: image.create from a loopback
// HTTP server, vm.disk_create clone_from_image=, a data disk, vm.on, the
// heartbeat on the serial console, vm.migrate with the guest still writing
// its counter, and the capacity rule.
func TestLibvirtGuestFromImage(t *testing.T) {
	storage := t.TempDir()
	e := startLibvirtE2E(t, "--libvirt-storage-dir", storage)
	g := libvirtharness.GuestT(t)
	e.join()

	l, err := net.Listen("tcp", "127.45.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Dir(g.Qcow2)))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	e.ok(fmt.Sprintf("image.create guest source_url=http://%s/disk.qcow2 container=default-container image_type=kDiskImage", l.Addr()), "ImageCreate: pending\nImageCreate: complete")
	e.ok("image.list", "guest", "kDiskImage", "qcow2")
	e.fails(fmt.Sprintf("image.create guest source_url=http://%s/disk.qcow2 image_type=kDiskImage", l.Addr()), 5, "image guest already exists")
	e.fails(fmt.Sprintf("image.create gone source_url=http://%s/nope.qcow2 image_type=kDiskImage", l.Addr()), 1, "404 Not Found")
	e.ok("vm.create g1 memory=128M", "VmCreate: complete")
	e.ok("vm.disk_create g1 clone_from_image=guest", "DiskCreate: complete")
	e.ok("vm.disk_create g1 create_size=64M", "DiskCreate: complete")
	e.fails("vm.disk_create g1 create_size=1000T", 5, "does not fit container default-container")
	e.fails("vm.disk_create g1 clone_from_image=gust", 3, `did you mean "guest"`)
	e.ok("container.list", "default-container")

	var disks []struct {
		Uuid  string `json:"uuid"`
		Index int    `json:"index"`
	}
	data(t, e.addr, &disks, "vm.disk_list", "g1")
	if len(disks) != 2 {
		t.Fatalf("vm g1 has %d disks, want 2", len(disks))
	}
	id, _, _ := e.vm("g1")
	console := filepath.Join(storage, ".consoles", id+".log")
	dataDisk := filepath.Join(storage, "default-container", "vdisks", disks[1].Uuid)

	e.ok("vm.on g1", "VmPowerOn: complete")
	waitFor(t, "heartbeat on the console", 3*time.Minute, func() bool {
		b, _ := os.ReadFile(console)
		return bytes.Contains(b, []byte("\nHB 1 "))
	})
	waitFor(t, "10 records on the data disk", time.Minute, func() bool { return guestRecords(t, dataDisk) >= 10 })
	_, _, src := e.vm("g1")
	dst := "h1"
	if src == "h1" {
		dst = "h2"
	}
	e.ok("vm.migrate g1 host="+dst, "VmMigrate: complete")
	e.runsOn("g1", dst)
	before := guestRecords(t, dataDisk)
	waitFor(t, "the counter going on after the migration", time.Minute, func() bool { return guestRecords(t, dataDisk) >= before+10 })
	if b, _ := os.ReadFile(console); bytes.Contains(b, []byte("WRERR")) || bytes.Contains(b, []byte("I/O error")) {
		t.Fatalf("the guest saw write errors:\n%s", b)
	}
	// A snapshot of the running guest: its disks are copied while it is
	// paused, so the copy of the data disk holds whole, contiguous records;
	// the guest goes on writing afterwards.
	e.ok("vm.snapshot_create g1 snapshot_name_list=live", "SnapshotCreate: complete")
	var snaps []struct {
		Uuid string `json:"uuid"`
		Vm   struct {
			Disks []struct {
				Uuid             string `json:"uuid"`
				SourceVmdiskUuid string `json:"source_vmdisk_uuid"`
			} `json:"disks"`
		} `json:"vm"`
	}
	data(t, e.addr, &snaps, "snapshot.list", "vm=g1")
	if len(snaps) != 1 || len(snaps[0].Vm.Disks) != 2 || snaps[0].Vm.Disks[1].SourceVmdiskUuid != disks[1].Uuid {
		t.Fatalf("snapshot.list vm=g1: %+v", snaps)
	}
	snapData := filepath.Join(storage, "default-container", "vdisks", snaps[0].Vm.Disks[1].Uuid)
	atSnap := guestRecords(t, snapData)
	if atSnap < 10 {
		t.Fatalf("the snapshot's data disk holds %d records", atSnap)
	}
	waitFor(t, "the counter going on after the snapshot", time.Minute, func() bool { return guestRecords(t, dataDisk) >= atSnap+10 })
	// A VM cloned from the snapshot gets copies of its vDisks; a disk
	// cloned by path copies the live data disk.
	e.ok("vm.clone g2 clone_from_snapshot=live", "VmClone: complete")
	var vms map[string]struct { // acli's vm.get: keyed by name
		Config struct {
			Disks []struct {
				VmdiskPath string `json:"vmdisk_nfs_path"`
			} `json:"disk_list"`
		} `json:"config"`
	}
	data(t, e.addr, &vms, "vm.get", "g2", "include_vmdisk_paths=1")
	g2 := vms["g2"].Config
	if len(g2.Disks) != 2 || guestRecords(t, filepath.Join(storage, g2.Disks[1].VmdiskPath)) != atSnap {
		t.Fatalf("vm.get g2: %+v", g2)
	}
	e.ok("vm.disk_create g2 clone_from_adsf_file=/default-container/vdisks/"+disks[1].Uuid, "DiskCreate: complete")
	e.fails("vm.disk_create g2 clone_from_adsf_file=/default-container/../etc/passwd", 2, "not a container path")
	e.ok("-y snapshot.delete live", "SnapshotDelete: complete")
	if _, err := os.Stat(snapData); !os.IsNotExist(err) {
		t.Fatalf("snapshot volume after snapshot.delete: %v", err)
	}
	e.ok("-y vm.delete g2", "VmDelete: complete")
	// The image goes; the disk cloned from it keeps its own data.
	e.ok("-y image.delete guest", "ImageDelete: complete")
	if _, err := os.Stat(filepath.Join(storage, "default-container", "vdisks", disks[0].Uuid)); err != nil {
		t.Fatalf("boot disk after image.delete: %v", err)
	}
	e.ok("vm.off g1", "complete")
	// Deleting a disk, then the VM, removes their volumes and the console.
	e.ok("-y vm.disk_delete g1 disk_addr=scsi.1", "VmDiskDelete: complete")
	if _, err := os.Stat(dataDisk); !os.IsNotExist(err) {
		t.Fatalf("data disk volume after vm.disk_delete: %v", err)
	}
	e.ok("-y vm.delete g1", "VmDelete: complete")
	for _, p := range []string{filepath.Join(storage, "default-container", "vdisks", disks[0].Uuid), console} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s after vm.delete: %v", p, err)
		}
	}
}

// The same commands against the sim: imports read the source for real
// (size, checksum, format) and the capacity rule holds.
func TestImagesOnSim(t *testing.T) {
	addr := startClusterd(t)
	dir := t.TempDir()
	img := bytes.Repeat([]byte("acli"), 1<<18) // 1 MiB
	os.WriteFile(filepath.Join(dir, "img.raw"), img, 0o644)
	l, err := net.Listen("tcp", "127.45.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	run := func(line string, code int, want string) {
		t.Helper()
		r := acli(t, addr, "", strings.Fields(line)...)
		if r.code != code || !strings.Contains(r.out+r.err, want) {
			t.Fatalf("acli %s: exit %d\n%s%s\nwant exit %d and %q", line, r.code, r.out, r.err, code, want)
		}
	}
	url := fmt.Sprintf("http://%s/img.raw", l.Addr())
	run("image.create base source_url="+url+" image_type=kDiskImage annotation=base", 0, "ImageCreate: complete")
	run("image.create base2 source_url="+url+" image_type=kDiskImage checksum_sha256="+strings.Repeat("0", 64), 1, "sha256 is")
	run("image.create iso source_url=file://"+filepath.Join(dir, "img.raw")+" image_type=iso", 0, "ImageCreate: complete")
	run("image.create x source_url=ftp://h/x image_type=kDiskImage", 2, "scheme must be http, https or file")
	run("image.create x source_url="+url, 2, "image_type")
	run("image.get base", 0, "size_bytes: 1048576")
	var ims map[string]struct {
		SizeBytes      int64  `json:"size_bytes"`
		ChecksumSha256 string `json:"checksum_sha256"`
		SourceFormat   string `json:"source_format"`
	}
	data(t, addr, &ims, "image.get", "base") // keyed by name, as acli's get
	im := ims["base"]
	if im.SizeBytes != 1048576 || len(im.ChecksumSha256) != 64 || im.SourceFormat != "raw" {
		t.Fatalf("image.get base: %+v", im)
	}
	run("vm.create v1 memory=1G", 0, "VmCreate: complete")
	run("vm.disk_create v1 clone_from_image=base create_size=20G", 0, "DiskCreate: complete")
	run("vm.disk_create v1 create_size=100T", 5, "does not fit container default-container")
	run("vm.disk_create v1 clone_from_image=bse", 3, `did you mean "base"`)
	run("image.update base name=base1", 0, "ImageUpdate: complete")
	var cs []struct {
		UsedBytes int64 `json:"used_bytes"`
		NumVdisks int   `json:"num_vdisks"`
		NumImages int   `json:"num_images"`
	}
	data(t, addr, &cs, "container.list")
	if len(cs) != 1 || cs[0].UsedBytes != 20<<30+2<<20 || cs[0].NumVdisks != 1 || cs[0].NumImages != 2 {
		t.Fatalf("container.list: %+v", cs)
	}
	run("image.delete base1", 2, "pass -y")
	run("-y image.delete base1", 0, "ImageDelete: complete")
	run("vm.disk_list v1", 0, "20G")
}
