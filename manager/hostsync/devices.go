package hostsync

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
)

// devices records the passthrough devices a host reported (libvirt's
// discovery on each connection). A report that matches the record commits
// nothing; one the rules refuse (a device gone that a running VM holds)
// leaves the record as it was and says why.
func (e *Events) devices(ctx context.Context, ev driver.HostEvent) error {
	for attempt := 0; ; attempt++ {
		var cur *acliv1.Host
		var rev int64
		e.DB.View(func(tx *state.Tx) { cur, rev = tx.Host(ev.HostUUID), tx.Rev(state.HostKey(ev.HostUUID)) })
		if cur == nil || sameDevices(cur.Devices, ev.Devices) {
			return nil
		}
		next := proto.Clone(cur).(*acliv1.Host)
		next.Devices = ev.Devices
		err := e.Commit(ctx, next, rev)
		if store.IsConflict(err) && attempt < 5 {
			time.Sleep(time.Duration(attempt+1) * time.Millisecond)
			continue
		}
		if err == nil && e.Publish != nil {
			e.Publish(Change{Event: ev, Prev: cur, Next: next, Type: "host", Severity: "info",
				Message: "host " + cur.Name + " (" + cur.HypervisorIp + ") has " + deviceCount(ev.Devices)})
		}
		return err
	}
}

func sameDevices(a, b []*acliv1.HostDevice) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// deviceCount says how many GPUs and PCIe devices there are.
func deviceCount(ds []*acliv1.HostDevice) string {
	gpus := 0
	for _, d := range ds {
		if d.Kind == acliv1.DeviceKind_kGpuPassthrough {
			gpus++
		}
	}
	return plural(gpus, "GPU") + " and " + plural(len(ds)-gpus, "PCIe device")
}

func plural(n int, what string) string {
	s := strconv.Itoa(n) + " " + what
	if n != 1 {
		s += "s"
	}
	return s
}
