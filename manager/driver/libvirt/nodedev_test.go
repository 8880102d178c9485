package libvirt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
)

// Each golden node device reads as the device host.get shows (or as none:
// bridges and platform functions), in testdata/nodedev/devices.golden.
func TestParseNodeDeviceGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "nodedev", "*.xml"))
	if err != nil || len(files) < 8 {
		t.Fatalf("golden node devices: %v %v", files, err)
	}
	var out strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, ok, err := ParseNodeDevice(b)
		out.WriteString("# " + filepath.Base(f) + "\n")
		switch {
		case err != nil:
			t.Fatalf("%s: %v", f, err)
		case !ok:
			out.WriteString("not offered\n")
		default:
			tx, err := prototext.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			out.Write(tx)
		}
		out.WriteString("\n")
	}
	// prototext randomizes its spacing between runs; the golden file has one space.
	got := strings.ReplaceAll(out.String(), ":  ", ": ")
	checkGolden(t, filepath.Join("testdata", "nodedev", "devices.golden"), got)
	if _, _, err := ParseNodeDevice([]byte("<device><capability type='pci'><class>zz</class></capability></device>")); err == nil || !strings.Contains(err.Error(), `class "zz" is not a hex number`) {
		t.Errorf("bad class: %v", err)
	}
	if _, _, err := ParseNodeDevice([]byte("<device")); err == nil {
		t.Error("truncated XML parsed")
	}
}

// An mdev names its GPU and type, for counting the vGPUs already made.
func TestMdevOf(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "nodedev", "mdev.xml"))
	if err != nil {
		t.Fatal(err)
	}
	parent, typ, id, ok := mdevOf(b)
	if !ok || parent != "pci_0000_3d_00_0" || typ != "nvidia-18" || id != "4b20d080-1b54-4048-85b3-a6a62d165c01" {
		t.Errorf("mdevOf = %q %q %q %v", parent, typ, id, ok)
	}
	if _, _, _, ok := mdevOf([]byte("<device><capability type='pci'/></device>")); ok {
		t.Error("a PCI device read as an mdev")
	}
}
