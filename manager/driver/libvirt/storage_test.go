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
