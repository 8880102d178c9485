package hostsync

import (
	"context"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
)

func driftDB(t *testing.T, vms ...*acliv1.Vm) *state.DB {
	t.Helper()
	db := statetest.Open(t)
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Name: "c", RedundancyFactor: 2}, 0)
		for _, n := range []string{"h1", "h2"} {
			tx.Put(state.HostKey("uuid-"+n), &acliv1.Host{Uuid: "uuid-" + n, Name: n, HypervisorIp: "127.42.0." + n[1:],
				MemoryBytes: 64 << 30, Schedulable: true, NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp}, 0)
		}
		for _, v := range vms {
			tx.Put(state.VmKey(v.Uuid), v, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func vmOn(name, host string, p acliv1.PowerState) *acliv1.Vm {
	v := &acliv1.Vm{Uuid: "uuid-" + name, Name: name, MemoryBytes: 1 << 30, PowerState: p}
	if host != "" && p != acliv1.PowerState_kOff {
		v.HostUuid, v.HostName = "uuid-"+host, host
	}
	return v
}

// A host's report against the records: each kind of drift, what the
// record becomes and the line that tells it; VMs the caller holds back
// (a task on them, a stale report) are left alone.
func TestDrifts(t *testing.T) {
	on, off, paused := acliv1.PowerState_kOn, acliv1.PowerState_kOff, acliv1.PowerState_kPaused
	db := driftDB(t,
		vmOn("same", "h1", on), vmOn("stopped", "h1", on), vmOn("paused", "h1", on), vmOn("moved", "h2", on),
		vmOn("started", "", off), vmOn("copy", "h2", on), vmOn("vanished", "h1", on), vmOn("busy", "h1", on),
		vmOn("offhere", "", off))
	at := time.Unix(1000, 0)
	ev := driver.HostEvent{Kind: driver.VmStates, HostUUID: "uuid-h1", Time: at, Complete: true, Vms: []driver.VmObservation{
		{VmUUID: "uuid-same", PowerState: on},
		{VmUUID: "uuid-stopped", PowerState: off},
		{VmUUID: "uuid-paused", PowerState: paused},
		{VmUUID: "uuid-moved", PowerState: on},
		{VmUUID: "uuid-started", PowerState: on},
		{VmUUID: "uuid-copy", PowerState: on, RunningElsewhere: []string{"uuid-h2"}},
		{VmUUID: "uuid-busy", PowerState: off},
		{VmUUID: "uuid-offhere", PowerState: off},
		{VmUUID: "uuid-notours", PowerState: on},
	}}
	var got []Drift
	db.View(func(tx *state.Tx) {
		got = Drifts(tx, ev, func(vm string, when time.Time) bool {
			if !when.Equal(at) {
				t.Errorf("reportable asked for %v, want the report's time", when)
			}
			return vm != "uuid-busy"
		})
	})
	want := map[string]struct {
		power acliv1.PowerState
		host  string
		fence bool
		msg   string
	}{
		"uuid-stopped":  {off, "", false, "vm stopped was found off on host h1 (127.42.0.1) (powered off outside clusterd)"},
		"uuid-paused":   {paused, "uuid-h1", false, "vm paused is paused on host h1 (127.42.0.1) (changed outside clusterd)"},
		"uuid-moved":    {on, "uuid-h1", false, "vm moved was found on on host h1 (127.42.0.1), not on h2 (127.42.0.2) (moved outside clusterd)"},
		"uuid-started":  {on, "uuid-h1", false, "vm started was found on on host h1 (127.42.0.1) (started outside clusterd)"},
		"uuid-copy":     {0, "", true, ""},
		"uuid-vanished": {off, "", false, "vm vanished is no longer on host h1 (127.42.0.1) (powered off outside clusterd)"},
	}
	if len(got) != len(want) {
		t.Errorf("%d drifts, want %d: %+v", len(got), len(want), got)
	}
	for _, d := range got {
		w, ok := want[d.VM]
		if !ok {
			t.Errorf("unexpected drift of %s: %+v", d.VM, d)
			continue
		}
		if d.Rev == 0 || !d.At.Equal(at) {
			t.Errorf("%s: rev %d at %v, want the record's revision and the report's time", d.VM, d.Rev, d.At)
		}
		if d.Fence != w.fence || d.Msg != w.msg {
			t.Errorf("%s: fence %v msg %q\nwant fence %v msg %q", d.VM, d.Fence, d.Msg, w.fence, w.msg)
		}
		if !w.fence && (d.Next.PowerState != w.power || d.Next.HostUuid != w.host) {
			t.Errorf("%s becomes %s on %q, want %s on %q", d.VM, d.Next.PowerState, d.Next.HostUuid, w.power, w.host)
		}
	}
	// A partial report says nothing of the VMs it leaves out.
	ev.Complete = false
	db.View(func(tx *state.Tx) { got = Drifts(tx, ev, func(string, time.Time) bool { return true }) })
	for _, d := range got {
		if d.VM == "uuid-vanished" {
			t.Error("a partial report powered off a VM it did not mention")
		}
	}
	// A report of a host not in the cluster changes nothing.
	ev.HostUUID = "nosuch"
	db.View(func(tx *state.Tx) { got = Drifts(tx, ev, func(string, time.Time) bool { return true }) })
	if len(got) != 0 {
		t.Errorf("report of an unknown host: %+v", got)
	}
}
