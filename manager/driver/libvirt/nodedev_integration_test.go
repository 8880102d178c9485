package libvirt

import (
	"cmp"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

// sysfsDevices is what discovery must find, read independently of libvirt:
// every PCI function in /sys/bus/pci/devices that is not plumbing, with its
// kind, vendor and device IDs and the host driver bound to it.
func sysfsDevices(t *testing.T) map[string]string {
	t.Helper()
	dirs, err := filepath.Glob("/sys/bus/pci/devices/*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range dirs {
		read := func(f string) string {
			b, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
		class, err := strconv.ParseUint(strings.TrimPrefix(read("class"), "0x"), 16, 32)
		if err != nil {
			t.Fatal(err)
		}
		if pciClassExcluded(uint32(class)) {
			continue
		}
		kind := acliv1.DeviceKind_kPcieDevice
		if class>>16 == 0x03 {
			kind = acliv1.DeviceKind_kGpuPassthrough
		}
		hostDriver := "-"
		if l, err := os.Readlink(filepath.Join(d, "driver")); err == nil {
			hostDriver = filepath.Base(l)
		}
		out[filepath.Base(d)] = kind.String() + " " + read("vendor") + " " + read("device") + " " + hostDriver
	}
	return out
}

// offered keeps the sysfs functions passthrough may take: those no host
// driver holds or set aside with vfio-pci or pci-stub (no GPU here splits).
func offered(sysfs map[string]string) map[string]string {
	out := map[string]string{}
	for addr, v := range sysfs {
		switch strings.Fields(v)[3] {
		case "-", "vfio-pci", "pci-stub":
			out[addr] = v
		}
	}
	return out
}

// checkDiscovered compares discovered devices with sysfs: the same
// addresses, each of the same kind, known vendors by their short name.
func checkDiscovered(t *testing.T, devs []*acliv1.HostDevice, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, d := range devs {
		w := strings.Fields(want[d.Address])
		if len(w) != 4 {
			t.Errorf("discovered device %s is not in sysfs", d.Address)
			continue
		}
		got[d.Address] = d.Kind.String() + " " + w[1] + " " + w[2] + " " + w[3]
		if v, ok := vendorNames[w[1]]; ok && d.Vendor != v {
			t.Errorf("device %s: vendor %s is %q, want %q", d.Address, w[1], d.Vendor, v)
		}
		if d.Vendor == "" || d.Model == "" || d.GroupUuid != driver.DeviceGroup(d.Kind, d.Vendor, d.Model) {
			t.Errorf("device %s: vendor %q, model %q, group %s", d.Address, d.Vendor, d.Model, d.GroupUuid)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("discovered devices:\n%v\nsysfs has:\n%v", got, want)
	}
	if !slices.IsSortedFunc(devs, func(a, b *acliv1.HostDevice) int { return strings.Compare(a.Address, b.Address) }) {
		t.Errorf("devices not in address order: %v", devs)
	}
}

// A joining host reads its PCI functions through libvirt's node-device API
// (this machine's must all be there, with the driver the kernel bound, and
// nothing else), offers those no host driver holds (here none: the kernel
// drives its virtio disk and NIC), and reports them again each time it
// reconnects.
func TestNodeDeviceDiscovery(t *testing.T) {
	h := hosts(t).Hosts[2]
	all := sysfsDevices(t)
	want := offered(all)
	t.Logf("sysfs: %d PCI functions, %d offered: %v", len(all), len(want), all)
	if len(all) == 0 {
		t.Fatal("no PCI function in sysfs to compare with")
	}

	c := dial(t, h.TCPURI())
	fns, err := c.pciFunctions()
	if err != nil {
		t.Fatal(err)
	}
	var read []*acliv1.HostDevice
	for _, f := range fns {
		read = append(read, f.dev)
		if w := strings.Fields(all[f.dev.Address]); len(w) == 4 && w[3] != cmp.Or(f.hostDriver, "-") {
			t.Errorf("function %s: libvirt says driver %q, sysfs %q", f.dev.Address, f.hostDriver, w[3])
		}
	}
	slices.SortFunc(read, func(a, b *acliv1.HostDevice) int { return strings.Compare(a.Address, b.Address) })
	checkDiscovered(t, read, all)
	devs, err := c.NodeDevices()
	if err != nil {
		t.Fatal(err)
	}
	checkDiscovered(t, devs, want)

	d := NewDriver(Config{HeartbeatInterval: 200 * time.Millisecond})
	events, err := d.Start(t.Context(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	joined, err := d.JoinHost(ctxTimeout(t, 30*time.Second), &acliv1.Host{Name: h.Name, HypervisorIp: h.Addr, LibvirtUri: h.TCPURI()})
	if err != nil {
		t.Fatal(err)
	}
	checkDiscovered(t, joined.Devices, want)

	reported := func() []*acliv1.HostDevice {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.Kind == driver.HostDevices && ev.HostUUID == joined.Uuid {
					return ev.Devices
				}
			case <-timeout:
				t.Fatal("no host devices report")
			}
		}
	}
	same := func(a, b []*acliv1.HostDevice) bool {
		return slices.EqualFunc(a, b, func(x, y *acliv1.HostDevice) bool { return proto.Equal(x, y) })
	}
	if got := reported(); !same(got, joined.Devices) {
		t.Errorf("first connection reported %v, join said %v", got, joined.Devices)
	}
	if err := h.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := reported(); !same(got, joined.Devices) {
		t.Errorf("reconnection reported %v, join said %v", got, joined.Devices)
	}
}

// A real libvirtd takes the mdev creation request and refuses it for the
// reason a host without that GPU has; the power-on error names the vGPU.
func TestMdevCreationOnHostWithoutGPU(t *testing.T) {
	h := hosts(t).Hosts[2]
	c := dial(t, h.TCPURI())
	gpu := &acliv1.VmDevice{Kind: acliv1.DeviceKind_kVirtualGpu, GroupUuid: "p2q", Name: "Nvidia_Tesla_M60-2Q", Address: "0000:3d:00.0",
		MdevUuid: "4b20d080-1b54-4048-85b3-a6a62d165c01"}
	host := &acliv1.Host{Name: h.Name, Devices: []*acliv1.HostDevice{{Address: "0000:3d:00.0", Kind: acliv1.DeviceKind_kGpuPassthrough,
		VgpuProfiles: []*acliv1.VgpuProfile{{Name: "Nvidia_Tesla_M60-2Q", TypeId: "nvidia-18", GroupUuid: "p2q"}}}}}
	err := createMdevs(c, host, &acliv1.Vm{Name: "vdi03", Devices: []*acliv1.VmDevice{gpu}})
	t.Logf("libvirt says: %v", err)
	if err == nil || !strings.Contains(err.Error(), "vm vdi03: creating vGPU Nvidia_Tesla_M60-2Q (mdev 4b20d080-1b54-4048-85b3-a6a62d165c01) on GPU 0000:3d:00.0 of host "+h.Name+": ") || !strings.Contains(err.Error(), "parent") {
		t.Fatalf("creating an mdev on a host without the GPU: %v", err)
	}
}
