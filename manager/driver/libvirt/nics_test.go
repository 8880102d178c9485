package libvirt

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

// fakeHost answers bridge probes as a host with the given Open vSwitch
// and Linux bridges would, counting the probes.
type fakeHost struct {
	ovs, linux []string
	probes     int
}

func (f *fakeHost) sh(_ context.Context, argv ...string) (string, error) {
	switch {
	case slices.Equal(argv[:3], []string{"ovs-vsctl", "--timeout=5", "br-exists"}):
		f.probes++
		if slices.Contains(f.ovs, argv[3]) {
			return "", nil
		}
		return "", &exitError{cmd: "ovs-vsctl", code: 2}
	case argv[0] == "ip" && slices.Contains(f.linux, argv[len(argv)-1]):
		return `[{"ifname":"` + argv[len(argv)-1] + `","linkinfo":{"info_kind":"bridge"}}]`, nil
	}
	return "", &exitError{cmd: argv[0], code: 1, out: "Device does not exist"}
}

var testNetworks = map[string]driver.NicNetwork{
	"n10": {VlanID: 10, Bridge: "br0"},
	"n0":  {VlanID: 0, Bridge: "br0"},
	"n30": {VlanID: 30, Bridge: "br1"},
}

func lookupTestNetwork(id string) (driver.NicNetwork, bool) {
	n, ok := testNetworks[id]
	return n, ok
}

// On a host whose virtual switch bridge is an Open vSwitch bridge, NICs
// are its ports tagged with their network's VLAN (none for VLAN 0, the
// native VLAN of a trunk); where the switch's bridge is a Linux bridge,
// or the network is not on record, a NIC is on its network's bridge.
func TestPlugNICs(t *testing.T) {
	nics := []*acliv1.Nic{
		{Mac: "50:6b:8d:00:00:01", NetworkUuid: "n10", NetworkName: "prod"},
		{Mac: "50:6b:8d:00:00:02", NetworkUuid: "n0", NetworkName: "native"},
		{Mac: "50:6b:8d:00:00:03", NetworkUuid: "n10", NetworkName: "prod", VlanMode: acliv1.NetworkMode_kTrunked, TrunkedNetworks: []int32{20, 30}},
		{Mac: "50:6b:8d:00:00:04", NetworkUuid: "n30", NetworkName: "backup"},
		{Mac: "50:6b:8d:00:00:05", NetworkUuid: "gone", NetworkName: "old"},
	}
	plug := func(h *fakeHost) []NICSpec {
		t.Helper()
		out := make([]NICSpec, len(nics))
		for i, n := range nics {
			out[i] = nicSpec(n)
		}
		got, err := plugNICs(context.Background(), h.sh, lookupTestNetwork, nics, out)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	ovs := &fakeHost{ovs: []string{"br0"}, linux: []string{"br1", "acli-backup", "acli-old"}}
	want := []NICSpec{
		{MAC: "50:6b:8d:00:00:01", Bridge: "br0", OVS: true, VLAN: 10},
		{MAC: "50:6b:8d:00:00:02", Bridge: "br0", OVS: true},
		{MAC: "50:6b:8d:00:00:03", Bridge: "br0", OVS: true, VLAN: 10, Trunk: []int{20, 30}},
		{MAC: "50:6b:8d:00:00:04", Bridge: "acli-backup"},
		{MAC: "50:6b:8d:00:00:05", Bridge: "acli-old"},
	}
	if got := plug(ovs); !reflect.DeepEqual(got, want) {
		t.Errorf("NICs on a host with OVS br0:\n got %+v\nwant %+v", got, want)
	}
	if ovs.probes != 4 { // br0, br1, acli-backup, acli-old: each once
		t.Errorf("%d Open vSwitch probes, want one per bridge (4)", ovs.probes)
	}
	linux := &fakeHost{linux: []string{"br0", "br1", "acli-prod", "acli-native", "acli-backup", "acli-old"}}
	for i, n := range plug(linux) {
		if n.OVS || n.VLAN != 0 || n.Bridge != BridgeName(nics[i].NetworkName) {
			t.Errorf("NIC %s on a Linux-bridge host: %+v, want on %s untagged", n.MAC, n, BridgeName(nics[i].NetworkName))
		}
	}
}

// The domain XML of NICs on an Open vSwitch virtual switch bridge: access
// ports tagged with their network's VLAN (VLAN 0 untagged), a trunk with
// its network's VLAN native (VLAN 0: trunked as 0, which Open vSwitch
// gives untagged frames), against a golden file; read back the same.
func TestDomainXMLSwitchPorts(t *testing.T) {
	s := DomainSpec{Name: "web01", UUID: "0b5e2bf4-7d7e-4f3c-9a55-2b3c1b6f9e10", VCPUs: 1, MemoryMiB: 64,
		NICs: []NICSpec{
			{MAC: "50:6b:8d:00:00:01", Bridge: "br0", Model: "virtio", OVS: true, VLAN: 10},
			{MAC: "50:6b:8d:00:00:02", Bridge: "br0", Model: "virtio", OVS: true},
			{MAC: "50:6b:8d:00:00:03", Bridge: "br0", Model: "virtio", OVS: true, VLAN: 10, Trunk: []int{20, 30}},
			{MAC: "50:6b:8d:00:00:04", Bridge: "acli-backup", Model: "virtio"},
			{MAC: "50:6b:8d:00:00:05", Bridge: "br0", Model: "virtio", OVS: true, Trunk: []int{20}},
		}}
	b, err := s.XML()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "domain-switch-ports.xml"), b)
	got, err := ParseDomainXML(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.NICs, s.NICs) {
		t.Errorf("NICs read back %+v, want %+v", got.NICs, s.NICs)
	}
	if n := strings.Count(string(b), "<vlan"); n != 3 {
		t.Errorf("%d <vlan> elements, want 3 (the VLAN 10 port and the trunks)", n)
	}
}

// The definition a live migration sends plugs the NICs as the
// destination does: from an Open vSwitch host (switch bridge br0, VLAN
// tags, virtual ports) to a Linux-bridge host (the networks' bridges,
// untagged) and back, with the model, link state, PCI address and an
// interface nics do not name unchanged; golden files.
func TestWithNICs(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "migrate-src-ovs.xml"))
	if err != nil {
		t.Fatal(err)
	}
	toLinux := []NICSpec{
		{MAC: "50:6b:8d:45:00:20", Bridge: "acli-n10", LinkDown: true},
		{MAC: "50:6b:8d:45:00:21", Bridge: "acli-n10", Trunk: []int{20}},
	}
	toOVS := []NICSpec{
		{MAC: "50:6b:8d:45:00:20", Bridge: "br0", OVS: true, VLAN: 10, LinkDown: true},
		{MAC: "50:6b:8d:45:00:21", Bridge: "br0", OVS: true, VLAN: 10, Trunk: []int{20}},
	}
	linux, err := WithNICs(string(src), toLinux)
	if err != nil {
		t.Fatal(err)
	}
	ovs, err := WithNICs(linux, toOVS)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, golden string }{{linux, "migrate-dest-linux.xml"}, {ovs, "migrate-dest-ovs.xml"}} {
		checkGolden(t, filepath.Join("testdata", c.golden), c.got)
	}
	for _, c := range []struct {
		x    string
		want []NICSpec
	}{{linux, toLinux}, {ovs, toOVS}} {
		d, err := ParseDomainXML([]byte(c.x))
		if err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(c.want), NICSpec{MAC: "50:6b:8d:45:00:22", Bridge: "acli-other", Model: "virtio"})
		want[0].Model, want[1].Model = "virtio", "e1000"
		if !reflect.DeepEqual(d.NICs, want) {
			t.Errorf("NICs of the destination XML:\n got %+v\nwant %+v", d.NICs, want)
		}
	}
	// The same kind at both ends keeps the Open vSwitch port's interfaceid.
	same, err := WithNICs(string(src), toOVS)
	if err != nil || !strings.Contains(same, "3c1b5e0a-8f5d-4a43-9d7e-1f2a3b4c5d6e") {
		t.Errorf("OVS to OVS lost the port's interfaceid: %v\n%s", err, same)
	}
}
