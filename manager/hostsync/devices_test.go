package hostsync

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

// A host's discovered devices replace its record's, with one event; the
// same report again commits nothing, and the host's state is untouched.
func TestEventsRecordDiscoveredDevices(t *testing.T) {
	f := newEvents(t, normalHost())
	devs := []*acliv1.HostDevice{
		{Address: "0000:3d:00.0", Kind: acliv1.DeviceKind_kGpuPassthrough, Vendor: "Nvidia", Model: "Tesla_M60", GroupUuid: "g"},
		{Address: "0000:18:02.1", Kind: acliv1.DeviceKind_kPcieDevice, Vendor: "Intel", Model: "X710_VF", GroupUuid: "p"},
	}
	report := func(ds []*acliv1.HostDevice) {
		t.Helper()
		if err := f.ev.Apply(context.Background(), driver.HostEvent{Kind: driver.HostDevices, HostUUID: "uuid-h1", Time: time.Now(), Devices: ds}); err != nil {
			t.Fatal(err)
		}
	}
	report(devs)
	h := f.host(t, "uuid-h1")
	if len(h.Devices) != 2 || !proto.Equal(h.Devices[0], devs[0]) || h.NodeState != acliv1.NodeState_AcropolisNormal || !h.Schedulable {
		t.Fatalf("host after the report: %v", h)
	}
	if f.commits != 1 || len(f.published) != 1 || f.published[0].Message != "host h1 (127.42.0.1) has 1 GPU and 1 PCIe device" || len(f.changed) != 0 {
		t.Fatalf("commits %d, published %v, changed %v", f.commits, f.published, f.changed)
	}
	report(devs)
	if f.commits != 1 {
		t.Fatalf("the same report committed again (%d commits)", f.commits)
	}
	report(nil)
	if h := f.host(t, "uuid-h1"); len(h.Devices) != 0 || f.published[1].Message != "host h1 (127.42.0.1) has 0 GPUs and 0 PCIe devices" {
		t.Fatalf("after the cards went: %v %v", h.Devices, f.published)
	}
	// An unknown host: nothing to record.
	if err := f.ev.Apply(context.Background(), driver.HostEvent{Kind: driver.HostDevices, HostUUID: "nobody", Devices: devs}); err != nil || f.commits != 2 {
		t.Fatalf("unknown host: %v, %d commits", err, f.commits)
	}
}
