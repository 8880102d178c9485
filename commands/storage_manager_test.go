package commands

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/managertest"
)

// Snapshots, clones and disk changes against the real manager in-process
// (sim driver): each command with its exit code and what it says.
func TestStorageAgainstManager(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3})
	h := &harness{t: t, c: client.New(conn)}
	img := filepath.Join(t.TempDir(), "img.raw")
	if err := os.WriteFile(img, []byte(strings.Repeat("acli", 1<<18)), 0o644); err != nil {
		t.Fatal(err)
	}
	step := func(line string, code int, want string) {
		t.Helper()
		c, out, errOut := h.run(strings.Fields(line)...)
		text := out
		if c != 0 {
			text = errOut
		}
		if c != code || !strings.Contains(text, want) {
			t.Fatalf("%s: exit %d, want %d and %q\nout: %s\nerr: %s", line, c, code, want, out, errOut)
		}
	}
	// task runs a mutation and checks the message its task ends with.
	task := func(line, want string) {
		t.Helper()
		step("-o json "+line, 0, want)
	}
	jsonData := func(v any, args ...string) {
		t.Helper()
		c, out, errOut := h.run(append([]string{"-o", "json"}, args...)...)
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if c != 0 || json.Unmarshal([]byte(out), &env) != nil || json.Unmarshal(env.Data, v) != nil {
			t.Fatalf("%v: exit %d\n%s%s", args, c, out, errOut)
		}
	}
	type disk struct {
		Uuid             string `json:"uuid"`
		Bus              string `json:"bus"`
		Index            int    `json:"index"`
		SizeBytes        int64  `json:"size_bytes"`
		Cdrom            bool   `json:"cdrom"`
		SourceVmdiskUuid string `json:"source_vmdisk_uuid"`
		SourceImageUuid  string `json:"source_image_uuid"`
		VmdiskPath       string `json:"vmdisk_path"`
	}
	var vm struct {
		Disks        []disk                 `json:"disks"`
		Nics         []struct{ Mac string } `json:"nics"`
		BootDiskAddr string                 `json:"boot_disk_addr"`
	}

	step("image.create base source_url=file://"+img+" image_type=kDiskImage", 0, "ImageCreate: complete")
	step("image.create iso source_url=file://"+img+" image_type=kIsoImage", 0, "ImageCreate: complete")
	step("net.create vlan100 vlan=100", 0, "NetworkCreate: complete")
	step("vm.create base01 memory=1G", 0, "VmCreate: complete")
	step("vm.disk_create base01 clone_from_image=base", 0, "DiskCreate: complete")
	step("vm.disk_create base01 create_size=10G", 0, "DiskCreate: complete")
	step("vm.disk_create base01 cdrom=true empty=true bus=ide", 0, "DiskCreate: complete")
	step("vm.nic_create base01 network=vlan100", 0, "VmNicCreate: complete")

	// vm.list keeps the API's field names (vm.get's JSON is acli's, keyed by name).
	getVM := func(v any, name string) {
		t.Helper()
		var vms []json.RawMessage
		jsonData(&vms, "vm.list", name)
		if len(vms) != 1 || json.Unmarshal(vms[0], v) != nil {
			t.Fatalf("vm.list %s: %s", name, vms)
		}
	}
	// vDisk paths, only when asked for (acli's vmdisk_nfs_path).
	getVM(&vm, "base01")
	if len(vm.Disks) != 3 || vm.Disks[1].VmdiskPath != "" {
		t.Fatalf("vm.get base01: %+v", vm.Disks)
	}
	boot := vm.Disks[1] // scsi.0 (ide.0, the CD-ROM, sorts first)
	var withPaths map[string]struct {
		Config struct {
			DiskList []struct {
				VmdiskUUID    string `json:"vmdisk_uuid"`
				VmdiskNfsPath string `json:"vmdisk_nfs_path"`
			} `json:"disk_list"`
		} `json:"config"`
	}
	jsonData(&withPaths, "vm.get", "base01", "include_vmdisk_paths=1")
	dl := withPaths["base01"].Config.DiskList
	if boot.Bus != "scsi" || len(dl) != 3 || dl[1].VmdiskUUID != boot.Uuid || dl[1].VmdiskNfsPath != "/default-container/vdisks/"+boot.Uuid || dl[0].VmdiskNfsPath != "" {
		t.Fatalf("vm.get include_vmdisk_paths=1: %+v", dl)
	}
	boot.VmdiskPath = dl[1].VmdiskNfsPath
	step("vm.get base01 include_vmdisk_paths=1", 0, "/default-container/vdisks/"+boot.Uuid)
	step("vm.disk_get base01 disk_addr=scsi.0", 0, "Source image:")
	step("vm.disk_get base01 disk_addr=scsi.7", 3, "vm base01 has no disk scsi.7 (disks: ide.0, scsi.0, scsi.1)")
	step("vm.disk_get base01 disk_addr=scsi", 2, `disk_addr="scsi" is not bus.index`)

	// Clones of one vDisk, by UUID and by path.
	step("vm.create other memory=1G", 0, "VmCreate: complete")
	task("vm.disk_create other clone_from_vmdisk="+boot.Uuid, "cloned from vDisk scsi.0 of vm base01")
	task("vm.disk_create other clone_from_adsf_file="+boot.VmdiskPath, "cloned from vDisk scsi.0 of vm base01")
	step("vm.disk_create other clone_from_vmdisk=not-a-uuid", 2, "is not a vDisk UUID")
	step("vm.disk_create other clone_from_vmdisk=00000000-0000-4000-8000-000000000000", 3, "00000000-0000-4000-8000-000000000000")
	step("vm.disk_create other clone_from_adsf_file=/default-container/iso/x.iso", 2, "simulated containers hold only vDisks")
	step("vm.disk_create other clone_from_adsf_file=/nosuch/vdisks/"+boot.Uuid, 3, "nosuch")
	step("vm.disk_create other clone_from_vmdisk="+boot.Uuid+" clone_from_image=base", 2, "give only one of")
	getVM(&vm, "other")
	if len(vm.Disks) != 2 || vm.Disks[0].SourceVmdiskUuid != boot.Uuid || vm.Disks[0].SizeBytes != 1048576 {
		t.Fatalf("vm.get other: %+v", vm.Disks)
	}

	// Disk changes: grow, never shrink; CD-ROM media; the boot device.
	task("vm.disk_update base01 disk_addr=scsi.1 new_size=20G", "disk scsi.1 of vm base01 grown from 10 GiB to 20 GiB")
	step("vm.disk_update base01 disk_addr=scsi.1 new_size=5G", 5, "a disk only grows")
	step("vm.disk_update base01 disk_addr=scsi.1 new_size=1000T", 5, "does not fit container default-container")
	step("vm.disk_update base01 disk_addr=scsi.1 empty=true", 2, "not a CD-ROM")
	task("vm.disk_update base01 disk_addr=ide.0 clone_from_image=iso", "image iso inserted into CD-ROM ide.0 of vm base01")
	step("vm.disk_get base01 disk_addr=ide.0", 0, "Size:          1M")
	task("vm.disk_update base01 disk_addr=ide.0 empty=true", "CD-ROM ide.0 of vm base01 ejected")
	step("vm.disk_get base01 disk_addr=ide.0", 0, "Medium:")
	step("vm.disk_update base01 disk_addr=ide.0", 2, "nothing to change")
	task("vm.update_boot_device base01 disk_addr=scsi.1", "vm base01 boots from scsi.1")
	step("vm.update_boot_device base01 disk_addr=sata.3", 3, "sata.3")
	step("-o block vm.get base01", 0, "Boot device:")
	step("vm.get base01", 0, "    boot {\n      disk_address {\n        bus: \"scsi\"\n        index: 1\n")

	// Snapshots.
	step("vm.on base01", 0, "VmPowerOn: complete")
	task("vm.snapshot_create base01 snapshot_name_list=s1,s2", "2 snapshot(s) taken (s1, s2), 2 vDisk(s) each")
	step("vm.snapshot_create base01 snapshot_name_list=s1", 5, "vm base01 has a snapshot of this name")
	step("vm.snapshot_create base01 snapshot_name_list=a,a", 2, `snapshot name "a" is given twice`)
	step("vm.snapshot_list base01", 0, "s2")
	step("snapshot.list", 0, "s1")
	step("snapshot.get s1", 0, "kOn")
	step("snapshot.get s9", 3, "s9")
	var snaps []struct {
		Name string `json:"name"`
		Vm   struct {
			Disks        []disk `json:"disks"`
			BootDiskAddr string `json:"boot_disk_addr"`
		} `json:"vm"`
	}
	jsonData(&snaps, "snapshot.list", "vm=base01")
	if len(snaps) != 2 || len(snaps[0].Vm.Disks) != 2 || snaps[0].Vm.Disks[0].SourceVmdiskUuid != boot.Uuid || snaps[0].Vm.BootDiskAddr != "scsi.1" {
		t.Fatalf("snapshot.list vm=base01: %+v", snaps)
	}

	// Clones: from a running VM (ranges), from a snapshot.
	step("vm.clone web[01..03] clone_from_vm=base01", 0, "VmClone web03: complete")
	task("vm.clone r1 clone_from_snapshot=s1", "vm r1 cloned from snapshot s1 (2 vDisk(s), 20.0 GiB)")
	step("vm.clone r2", 2, "give one of clone_from_vm=<vm> or clone_from_snapshot=<snapshot>")
	step("vm.clone r2 clone_from_vm=nosuch", 3, "nosuch")
	getVM(&vm, "web02")
	if len(vm.Disks) != 3 || vm.Disks[1].SourceVmdiskUuid != boot.Uuid || vm.BootDiskAddr != "scsi.1" || len(vm.Nics) != 1 {
		t.Fatalf("vm.get web02: %+v", vm)
	}
	var base struct {
		Nics []struct{ Mac string } `json:"nics"`
	}
	getVM(&base, "base01")
	if vm.Nics[0].Mac == base.Nics[0].Mac {
		t.Fatalf("the clone kept the MAC %s", vm.Nics[0].Mac)
	}
	step("vm.list", 0, "web03")

	// Deleting a snapshot and the image leaves the clones whole.
	step("snapshot.delete s1", 2, "pass -y")
	task("-y snapshot.delete s1", "snapshot s1 of vm base01 deleted")
	step("-y image.delete base", 0, "ImageDelete: complete")
	step("vm.disk_get r1 disk_addr=scsi.0", 0, "Size:")
	step("vm.on r1", 0, "VmPowerOn: complete")

	// Every vDisk counts against the container: snapshots and clones too.
	var cs []struct {
		UsedBytes int64 `json:"used_bytes"`
		NumVdisks int   `json:"num_vdisks"`
	}
	jsonData(&cs, "container.list")
	// base01 1M+20G, other 2×1M, s2 1M+20G, web01-03 3×(1M+20G), r1 1M+20G
	if len(cs) != 1 || cs[0].UsedBytes != 128858456064 || cs[0].NumVdisks != 14 {
		t.Fatalf("container.list: %+v", cs)
	}

	// Volume groups: a vDisk cloned from a VM's, a clone of the group, and
	// a VM disk cloned from a group's vDisk.
	step("vg.create data", 0, "VgCreate: complete")
	step("vg.disk_create data create_size=10G", 0, "VgDiskCreate: complete")
	task("vg.disk_create data clone_from_vmdisk="+boot.Uuid, "volume group data disk 1 created (1 MiB cloned from vDisk scsi.0 of vm base01)")
	step("vg.disk_create data", 2, "missing required key create_size=<size>")
	task("vg.clone data2 clone_from_vg=data", "volume group data2 cloned from data (2 vDisk(s))")
	step("vg.clone data3 clone_from_vg=nosuch", 3, "nosuch")
	step("vg.clone data2 clone_from_vg=data", 5, "volume group names are unique")
	var vgs []struct {
		Disks []disk `json:"disks"`
	}
	jsonData(&vgs, "vg.list", "data2") // the API's field names
	if len(vgs) != 1 {
		t.Fatalf("vg.list data2: %+v", vgs)
	}
	vg := vgs[0]
	if len(vg.Disks) != 2 || vg.Disks[1].SizeBytes != 1048576 || vg.Disks[1].SourceVmdiskUuid == "" {
		t.Fatalf("vg.get data2: %+v", vg.Disks)
	}
	task("vm.disk_create other clone_from_vmdisk="+vg.Disks[0].Uuid, "cloned from vDisk 0 of volume group data2")
	step("-y vg.delete data2", 0, "VgDelete: complete")
}
