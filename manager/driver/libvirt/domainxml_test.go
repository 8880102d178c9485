package libvirt

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

func TestDomainXMLRoundTrip(t *testing.T) {
	s := DomainSpec{Name: "web01", UUID: "0b5e2bf4-7d7e-4f3c-9a55-2b3c1b6f9e10", VCPUs: 2, MemoryMiB: 64, Description: "acli vm <web>"}
	b, err := s.XML()
	if err != nil {
		t.Fatal(err)
	}
	x := string(b)
	for _, want := range []string{
		`<domain type="qemu">`, `<name>web01</name>`, `<memory unit="MiB">64</memory>`,
		`<vcpu placement="static">2</vcpu>`, `<type arch="x86_64" machine="pc">hvm</type>`,
		`<acpi></acpi>`, `acli vm &lt;web&gt;`, `<devices></devices>`,
	} {
		if !strings.Contains(x, want) {
			t.Errorf("domain XML lacks %s:\n%s", want, x)
		}
	}
	got, err := ParseDomainXML(b)
	if err != nil {
		t.Fatal(err)
	}
	s.Arch, s.Machine = "x86_64", "pc"
	if !reflect.DeepEqual(got, s) {
		t.Errorf("round trip: got %+v, want %+v", got, s)
	}
	// What libvirt hands back: KiB, extra elements acli does not model.
	lv := `<domain type='qemu' id='3'><name>a</name><uuid>0b5e2bf4-7d7e-4f3c-9a55-2b3c1b6f9e10</uuid>
	<memory unit='KiB'>65536</memory><vcpu placement='static'>1</vcpu>
	<os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type><boot dev='hd'/></os>
	<devices><emulator>/usr/bin/qemu-system-x86_64</emulator><controller type='usb'/></devices></domain>`
	got, err = ParseDomainXML([]byte(lv))
	if err != nil {
		t.Fatal(err)
	}
	if got.MemoryMiB != 64 || got.VCPUs != 1 || got.Machine != "pc-i440fx-7.2" {
		t.Errorf("parsed %+v", got)
	}
}

func TestDomainSpecValidate(t *testing.T) {
	for _, c := range []struct {
		s    DomainSpec
		want string
	}{
		{DomainSpec{VCPUs: 1, MemoryMiB: 64}, "name is empty"},
		{DomainSpec{Name: "a/b", VCPUs: 1, MemoryMiB: 64}, "no '/'"},
		{DomainSpec{Name: "a", MemoryMiB: 64}, "vcpus=0"},
		{DomainSpec{Name: "a", VCPUs: 1}, "memory=0"},
		{DomainSpec{Name: "a", VCPUs: 1, MemoryMiB: 64, UUID: "nope"}, `uuid "nope"`},
	} {
		if _, err := c.s.XML(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.s, err, c.want)
		}
	}
}

func TestToMiB(t *testing.T) {
	for _, c := range []struct {
		unit string
		v    uint64
		want uint64
	}{{"KiB", 65536, 64}, {"", 1024, 1}, {"GiB", 2, 2048}, {"b", 1, 1}, {"MB", 1000, 954}} {
		got, err := toMiB(sizeXML{Unit: c.unit, Value: c.v})
		if err != nil || got != c.want {
			t.Errorf("toMiB(%d %s) = %d, %v; want %d", c.v, c.unit, got, err, c.want)
		}
	}
	if _, err := toMiB(sizeXML{Unit: "parsecs", Value: 1}); err == nil {
		t.Error("unknown unit accepted")
	}
}

func TestMbpsToMiBps(t *testing.T) {
	for in, want := range map[uint64]uint64{0: 0, 1: 1, 8: 1, 9: 2, 1000: 120, 10000: 1193} {
		if got := MbpsToMiBps(in); got != want {
			t.Errorf("MbpsToMiBps(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestProgressFromParams(t *testing.T) {
	p := progressFromParams([]golibvirt.TypedParam{
		{Field: "memory_iteration", Value: *golibvirt.NewTypedParamValueUllong(3)},
		{Field: "data_total", Value: *golibvirt.NewTypedParamValueUllong(1000)},
		{Field: "data_processed", Value: *golibvirt.NewTypedParamValueUllong(800)},
		{Field: "data_remaining", Value: *golibvirt.NewTypedParamValueUllong(250)},
		{Field: "downtime", Value: *golibvirt.NewTypedParamValueUllong(42)},
		{Field: "operation", Value: *golibvirt.NewTypedParamValueInt(6)},
		{Field: "errmsg", Value: *golibvirt.NewTypedParamValueString("x")},
	})
	if p.Iteration != 3 || p.DataRemaining != 250 || p.Downtime != 42*time.Millisecond || p.Percent != 75 {
		t.Errorf("progress %+v", p)
	}
}

func TestEventFromLibvirt(t *testing.T) {
	dom := golibvirt.Domain{Name: "vm1", UUID: golibvirt.UUID{1, 2, 3}}
	e := eventFromLibvirt(golibvirt.DomainEventLifecycleMsg{Dom: dom, Event: int32(golibvirt.DomainEventStopped), Detail: int32(golibvirt.DomainEventStoppedMigrated)})
	if e.Type != EventStopped || !e.Migrated || e.State() != StateOff || e.UUID != "01020300-0000-0000-0000-000000000000" {
		t.Errorf("migrated-away event %+v", e)
	}
	e = eventFromLibvirt(golibvirt.DomainEventLifecycleMsg{Dom: dom, Event: int32(golibvirt.DomainEventStopped), Detail: int32(golibvirt.DomainEventStoppedDestroyed)})
	if e.Migrated || e.String() != "vm1 stopped" {
		t.Errorf("destroy event %+v %q", e, e)
	}
	e = eventFromLibvirt(golibvirt.DomainEventLifecycleMsg{Dom: dom, Event: int32(golibvirt.DomainEventStarted), Detail: int32(golibvirt.DomainEventStartedMigrated)})
	if !e.Migrated || e.State() != StateRunning || e.String() != "vm1 started (migration)" {
		t.Errorf("arrival event %+v", e)
	}
}

func TestHostUUIDFromCapabilities(t *testing.T) {
	id, err := hostUUIDFromCapabilities([]byte(`<capabilities><host><uuid>4e38f48e-0362-4d5d-968d-104a48986327</uuid><cpu/></host></capabilities>`))
	if err != nil || id != "4e38f48e-0362-4d5d-968d-104a48986327" {
		t.Errorf("%q %v", id, err)
	}
	if _, err := hostUUIDFromCapabilities([]byte(`<capabilities/>`)); err == nil {
		t.Error("missing uuid accepted")
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// checkGolden compares got with the golden file at path (-update rewrites
// it).
func checkGolden[T string | []byte](t *testing.T, path string, got T) {
	t.Helper()
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

// A VM with a boot disk from an image, a data disk, a CD-ROM, disks on
// every bus, one served over iSCSI, two NICs and a console file, against
// a golden file.
func TestDomainXMLDevices(t *testing.T) {
	s := DomainSpec{
		Name: "db01", UUID: "0b5e2bf4-7d7e-4f3c-9a55-2b3c1b6f9e10", VCPUs: 1, MemoryMiB: 96,
		Disks: []DiskSpec{
			{Bus: "scsi", Index: 1, Path: "/c/default-container/vdisks/b.raw", Serial: "b"},
			{Bus: "scsi", Index: 0, Path: "/c/default-container/vdisks/a.raw", Serial: "a", Boot: true},
			{Bus: "ide", Index: 3, CDROM: true, Path: "/c/default-container/images/iso.raw"},
			{Bus: "ide", Index: 0, CDROM: true},
			{Bus: "sata", Index: 2, Path: "/c/sata.raw"},
			{Bus: "pci", Index: 0, Path: "/c/pci0.raw"},
			{Bus: "pci", Index: 1, Serial: "c", ISCSI: &ISCSISource{Portal: "127.0.0.1:3261",
				IQN: "iqn.2010-06.com.nutanix:vdisk-c", Initiator: "iqn.2010-06.com.nutanix:h1:vm-0b5e2bf4"}},
		},
		NICs: []NICSpec{
			{MAC: "50:6b:8d:00:00:01", Bridge: "br-vlan0"},
			{MAC: "50:6b:8d:00:00:02", Bridge: "br-vlan10", Model: "e1000"},
			{MAC: "50:6b:8d:00:00:03", Bridge: "br0", Trunk: []int{20, 30}, OVS: true},
		},
		Console: &ConsoleSpec{Path: "/c/consoles/db01.log"},
	}
	b, err := s.XML()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "domain-devices.xml"), b)
	got, err := ParseDomainXML(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range got.Disks {
		// Read back in bus-then-index order.
		if i > 0 && cmpBus(got.Disks[i-1].Bus, d.Bus) == 0 && got.Disks[i-1].Index >= d.Index {
			t.Errorf("disk order: %+v", got.Disks)
		}
	}
	if len(got.Disks) != len(s.Disks) || !reflect.DeepEqual(got.NICs[1], NICSpec{MAC: "50:6b:8d:00:00:02", Bridge: "br-vlan10", Model: "e1000"}) ||
		!reflect.DeepEqual(got.NICs[2], NICSpec{MAC: "50:6b:8d:00:00:03", Bridge: "br0", Model: "virtio", Trunk: []int{20, 30}, OVS: true}) || got.Console.Path != s.Console.Path {
		t.Errorf("parsed back %+v", got)
	}
	for _, d := range got.Disks {
		for _, w := range s.Disks {
			if w.Bus == d.Bus && w.Index == d.Index && !reflect.DeepEqual(w, d) {
				t.Errorf("disk %s.%d parsed back as %+v, want %+v", d.Bus, d.Index, d, w)
			}
		}
	}

	for _, c := range []struct {
		disks []DiskSpec
		nics  []NICSpec
		want  string
	}{
		{[]DiskSpec{{Bus: "usb", Path: "/x"}}, nil, "bus must be scsi, sata, ide or pci"},
		{[]DiskSpec{{Bus: "ide", Index: 4, Path: "/x"}}, nil, "index out of range 0-3"},
		{[]DiskSpec{{Bus: "scsi"}}, nil, "no volume"},
		{[]DiskSpec{{Bus: "pci", CDROM: true}}, nil, "CD-ROM cannot be on the pci bus"},
		{[]DiskSpec{{Bus: "scsi", Path: "/a"}, {Bus: "scsi", Path: "/b"}}, nil, "disk scsi.0 appears twice"},
		{[]DiskSpec{{Bus: "scsi", Path: "/a", Boot: true}, {Bus: "scsi", Index: 1, Path: "/b", Boot: true}}, nil, "2 boot devices"},
		{nil, []NICSpec{{MAC: "nope", Bridge: "b"}}, "nic \"nope\""},
		{nil, []NICSpec{{MAC: "50:6b:8d:00:00:01"}}, "no bridge"},
	} {
		s := DomainSpec{Name: "a", VCPUs: 1, MemoryMiB: 96, Disks: c.disks, NICs: c.nics}
		if _, err := s.XML(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("XML(%+v, %+v) = %v, want an error containing %q", c.disks, c.nics, err, c.want)
		}
	}
}

func TestDriveLetters(t *testing.T) {
	for i, want := range map[int]string{0: "a", 25: "z", 26: "aa", 27: "ab", 51: "az", 52: "ba", 701: "zz", 702: "aaa"} {
		if got := driveLetters(i); got != want {
			t.Errorf("driveLetters(%d) = %q, want %q", i, got, want)
		}
	}
}

// A trunked NIC carries its VLAN tags and a disconnected one link state
// down, in the definition and in the device XML a live update sends.
func TestNICVLANAndLinkState(t *testing.T) {
	s := DomainSpec{Name: "web01", UUID: "0b5e2bf4-7d7e-4f3c-9a55-2b3c1b6f9e10", VCPUs: 1, MemoryMiB: 64,
		NICs: []NICSpec{{MAC: "50:6b:8d:00:00:01", Bridge: "acli-prod", Model: "virtio", Trunk: []int{20, 30}, LinkDown: true},
			{MAC: "50:6b:8d:00:00:02", Bridge: "acli-prod", Model: "virtio"}}}
	b, err := s.XML()
	if err != nil {
		t.Fatal(err)
	}
	x := string(b)
	for _, want := range []string{`<vlan trunk="yes">`, `<tag id="20"></tag>`, `<tag id="30"></tag>`, `<link state="down"></link>`} {
		if strings.Count(x, want) != 1 {
			t.Errorf("domain XML should have %s once (the trunked, disconnected NIC):\n%s", want, x)
		}
	}
	dev, err := xml.Marshal(nicXML(s.NICs[0], "virtio"))
	if err != nil || !strings.HasPrefix(string(dev), `<interface type="bridge"><mac address="50:6b:8d:00:00:01">`) ||
		!strings.Contains(string(dev), `<link state="down"></link>`) {
		t.Errorf("device XML for a live update: %s %v", dev, err)
	}
	got, err := ParseDomainXML(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.NICs, s.NICs) {
		t.Errorf("NICs read back %+v, want %+v", got.NICs, s.NICs)
	}
}
