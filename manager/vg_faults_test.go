package manager_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/managertest"
)

// waitSessions polls until ok accepts the sessions of vg (or fails after
// a generous bound: VM sessions follow HA restarts on the periodic pass).
func waitSessions(t *testing.T, vg acliv1.VolumeGroupServiceClient, name string, ok func([]*acliv1.IscsiSession) bool) []*acliv1.IscsiSession {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ss := sessions(t, vg, name)
		if ok(ss) {
			return ss
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions of %s: %v", name, ss)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestVgHostFailureFailsOver: a host failure takes its CVM down with it:
// external sessions move off it within the deadline, the VM restarted by HA
// is served by the CVM local to its new host (no "redirected" report for
// the dead host's VMs), and sessions fail back when the host returns.
func TestVgHostFailureFailsOver(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c, vg := newClients(h.Conn), vgClient(h)
	makeVg(t, c, vg, "data", 3)
	succeed(t, c)(vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: initiator}))
	want := servedBy(sessions(t, vg, "data"))
	makeVg(t, c, vg, "dbvg", 1)
	createVm(t, c, "db", 4*gib)
	succeed(t, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "db", SizeBytes: 20 * gib}))
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "db", Transition: acliv1.PowerTransition_kPowerOn, Host: "h1"}))
	db := getVm(t, c, "db")
	succeed(t, c)(vg.AttachToVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "dbvg", Vm: "db"}))
	committedWithin(t, h, h.Manager.IscsiDeadline())

	evs := iscsiEvents(t, c)
	if _, err := c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	committedWithin(t, h, h.Manager.IscsiDeadline())
	if n := cvmCounts(sessions(t, vg, "data")); n["127.20.0.31"] != 0 || n["127.20.0.32"]+n["127.20.0.33"] != 3 {
		t.Fatalf("external sessions after host h1 failed: %v", n)
	}
	if final := haTask(t, c, "h1"); final.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("HA: %v %s", final.Status, final.Error)
	}
	moved := getVm(t, c, "db")
	if moved.HostUuid == db.HostUuid || moved.PowerState != acliv1.PowerState_kOn {
		t.Fatalf("db after HA: %v on %s", moved.PowerState, moved.HostName)
	}
	local := getHost(t, c, moved.HostUuid).CvmIp
	waitSessions(t, vg, "dbvg", func(ss []*acliv1.IscsiSession) bool {
		return len(ss) == 1 && ss[0].CvmIp == local && ss[0].PreferredCvmIp == local && ss[0].Port == 3261
	})
	for _, e := range evs(1) {
		if strings.HasPrefix(e.Message, "vm db disks") {
			t.Fatalf("the dead host's VM reported as redirected: %q", e.Message)
		}
	}

	if _, err := c.sim.RecoverHost(bg, &acliv1.SimHostRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	waitSessions(t, vg, "data", func(ss []*acliv1.IscsiSession) bool { return fmt.Sprint(servedBy(ss)) == fmt.Sprint(want) })
	committedWithin(t, h, h.Manager.IscsiDeadline())
}

// TestVgCvmMaintenanceFailsOver: a CVM entering maintenance hands its
// sessions to the others, with one event per move, and takes them back
// when it exits.
func TestVgCvmMaintenanceFailsOver(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c, vg := newClients(h.Conn), vgClient(h)
	makeVg(t, c, vg, "data", 3)
	succeed(t, c)(vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: initiator}))
	before := sessions(t, vg, "data")
	want := servedBy(before)
	var disk int32 = -1
	for _, s := range before {
		if s.CvmIp == "127.20.0.32" {
			disk = s.DiskIndex
		}
	}
	if disk < 0 {
		t.Fatalf("no session on 127.20.0.32: %v", before)
	}

	evs := iscsiEvents(t, c)
	succeed(t, c)(c.host.EnterCvmMaintenanceMode(bg, &acliv1.CvmMaintenanceRequest{Host: "h2"}))
	committedWithin(t, h, h.Manager.IscsiDeadline())
	during := sessions(t, vg, "data")
	var to string
	for _, s := range during {
		if s.CvmIp == "127.20.0.32" || s.State != acliv1.IscsiSessionState_kSessionActive {
			t.Fatalf("session during cvm maintenance: %v", s)
		}
		if s.DiskIndex == disk {
			to = s.CvmIp
		}
	}
	wantMsg := fmt.Sprintf("session %s/%d moved 127.20.0.32 -> %s", initiator, disk, to)
	if mv := moveEvents(evs(1)); !slices.Equal(mv, []string{wantMsg}) {
		t.Fatalf("move events %q, want %q", mv, wantMsg)
	}

	evs = iscsiEvents(t, c)
	succeed(t, c)(c.host.ExitCvmMaintenanceMode(bg, &acliv1.CvmMaintenanceRequest{Host: "h2"}))
	if got := servedBy(sessions(t, vg, "data")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after cvm maintenance %v, want %v", got, want)
	}
	back := fmt.Sprintf("session %s/%d moved %s -> 127.20.0.32", initiator, disk, to)
	if mv := moveEvents(evs(1)); !slices.Equal(mv, []string{back}) {
		t.Fatalf("failback events %q, want %q", mv, back)
	}
}

// TestStaleHostEventIgnored: a fault RPC applies its change at once; the
// driver's report of an earlier change arriving after a recovery must not
// take the CVM down again.
func TestStaleHostEventIgnored(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c, vg := newClients(h.Conn), vgClient(h)
	makeVg(t, c, vg, "data", 3)
	succeed(t, c)(vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: "data", InitiatorName: initiator}))
	want := servedBy(sessions(t, vg, "data"))
	failedAt := time.Now()
	if _, err := c.sim.FailCvm(bg, &acliv1.SimHostRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.sim.RecoverCvm(bg, &acliv1.SimHostRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	id := getHost(t, c, "h1").Uuid
	if err := h.Manager.ApplyHostEvent(driver.HostEvent{Kind: driver.CvmDown, HostUUID: id, Time: failedAt, Reason: "late report"}); err != nil {
		t.Fatal(err)
	}
	if st := getHost(t, c, "h1").CvmState; st != acliv1.CvmState_kCvmUp {
		t.Fatalf("a stale report took the cvm down again: %v", st)
	}
	if got := servedBy(sessions(t, vg, "data")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sessions %v, want %v", got, want)
	}
	// A newer report is applied.
	if err := h.Manager.ApplyHostEvent(driver.HostEvent{Kind: driver.CvmDown, HostUUID: id, Time: time.Now(), Reason: "cvm crashed"}); err != nil {
		t.Fatal(err)
	}
	if st := getHost(t, c, "h1").CvmState; st != acliv1.CvmState_kCvmDown {
		t.Fatalf("a new report was ignored: %v", st)
	}
}
