package libvirt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Container paths map to files inside the storage directory only.
func TestStorageFilePath(t *testing.T) {
	dir := t.TempDir()
	st := Storage{Dir: filepath.Join(dir, "containers")}
	vd := st.VolumePath("default-container", "v1")
	if err := os.MkdirAll(filepath.Dir(vd), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(vd, []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("x"), 0o644)
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(st.Dir, "default-container", "link"))
	if p, err := st.FilePath("/default-container/vdisks/v1"); err != nil || p != vd {
		t.Fatalf("FilePath of a vDisk: %q %v", p, err)
	}
	for path, want := range map[string]string{
		"default-container/vdisks/v1":     "not a container path",
		"/default-container/../../secret": "not a container path",
		"/default-container":              "not a container path",
		"/.consoles/x.log":                "not a container path",
		"/default-container/link":         "leads out of the storage containers",
		"/default-container/vdisks/none":  "no such file",
	} {
		if _, err := st.FilePath(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("FilePath(%q): %v, want %q", path, err, want)
		}
	}
}

// The boot device is the VM's boot_disk_addr, else its first disk.
func TestBootDisk(t *testing.T) {
	st := Storage{Dir: "/s"}
	vm := &acliv1.Vm{Disks: []*acliv1.Disk{
		{Bus: "scsi", Index: 0, Uuid: "a", SizeBytes: 1},
		{Bus: "scsi", Index: 1, Uuid: "b", SizeBytes: 1},
		{Bus: "ide", Index: 0, Uuid: "c", Cdrom: true},
	}}
	boot := func() string {
		for _, d := range st.vmDisks(vm) {
			if d.Boot {
				return d.Serial
			}
		}
		return ""
	}
	if got := boot(); got != "a" {
		t.Fatalf("default boot disk %q, want a (scsi.0)", got)
	}
	vm.BootDiskAddr = "ide.0"
	if got := boot(); got != "c" {
		t.Fatalf("boot disk %q, want c (ide.0)", got)
	}
	vm.BootDiskAddr = "sata.4" // gone: the first disk again
	if got := boot(); got != "a" {
		t.Fatalf("boot disk %q, want a", got)
	}
}

// NICs are wired from the model: MAC, model and the network's bridge.
func TestVmNICs(t *testing.T) {
	if got := BridgeName("vlan100"); got != "acli-vlan100" {
		t.Errorf("BridgeName(vlan100) = %q", got)
	}
	for _, long := range []string{"prod-frontend-net", "net with space"} { // too long, or no interface name: hashed
		if got := BridgeName(long); len(got) != 15 || !strings.HasPrefix(got, "acli-") {
			t.Errorf("BridgeName(%q) = %q", long, got)
		}
	}
	if BridgeName("prod-frontend-net") == BridgeName("prod-frontend-ne2") {
		t.Error("two long network names share a bridge")
	}
	vm := &acliv1.Vm{Name: "web01", Uuid: "6a1f3d7e-3c1b-4d5e-9f00-0123456789ab", NumVcpus: 1, MemoryBytes: 128 << 20,
		Nics: []*acliv1.Nic{{Mac: "50:6b:8d:00:00:01", NetworkName: "vlan100", Model: "virtio"}, {Mac: "50:6b:8d:00:00:02", NetworkName: "vlan200", Model: "e1000"}}}
	spec := VmDomainSpec(vm, Storage{})
	spec.NICs = VmNICs(vm)
	x, err := spec.XML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<mac address="50:6b:8d:00:00:01">`, `<source bridge="acli-vlan100">`, `<model type="virtio">`,
		`<source bridge="acli-vlan200">`, `<model type="e1000">`} {
		if !strings.Contains(string(x), want) {
			t.Errorf("domain XML lacks %s:\n%s", want, x)
		}
	}
}
