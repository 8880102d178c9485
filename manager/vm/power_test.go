package vm_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/vm"
)

func power(f *fake, vm string, tr acliv1.PowerTransition, host string) (*acliv1.Task, error) {
	return f.svc.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: vm, Transition: tr, Host: host})
}

func last(pb *acliv1.Task) string {
	if pb == nil || len(pb.Messages) == 0 {
		return ""
	}
	return pb.Messages[len(pb.Messages)-1]
}

// What each transition needs of the VM's power state, and the requests
// that change nothing succeeding at once without the driver.
func TestPowerTransitionsByState(t *testing.T) {
	on, off, paused := "a", "b", "p"
	for _, tc := range []struct {
		vm   string
		tr   acliv1.PowerTransition
		code codes.Code
		want string // the error, or the task's last line
	}{
		{on, acliv1.PowerTransition_kPowerOn, codes.OK, "vm a is already on"},
		{off, acliv1.PowerTransition_kPowerOff, codes.OK, "vm b is already off"},
		{off, acliv1.PowerTransition_kShutdown, codes.OK, "vm b is already off"},
		{paused, acliv1.PowerTransition_kPowerOn, codes.FailedPrecondition, "vm p is paused; power it off first"},
		{off, acliv1.PowerTransition_kReboot, codes.FailedPrecondition, "vm b is off; power it on first"},
		{off, acliv1.PowerTransition_kReset, codes.FailedPrecondition, "vm b is off; power it on first"},
		{off, acliv1.PowerTransition_kPowerCycle, codes.FailedPrecondition, "vm b is off; power it on first"},
		{paused, acliv1.PowerTransition_kShutdown, codes.FailedPrecondition, "vm p is paused; power it on first"},
		{paused, acliv1.PowerTransition_kReboot, codes.FailedPrecondition, "vm p is paused; power it on first"},
	} {
		f := newFake(t)
		f.addPaused(t, "p", "h2")
		pb, err := power(f, tc.vm, tc.tr, "")
		if tc.code != codes.OK {
			wantErr(t, err, tc.code, tc.want)
		} else if err != nil || pb.Status != acliv1.TaskStatus_kSucceeded || last(pb) != tc.want {
			t.Fatalf("%s %s: %v %v", tc.tr, tc.vm, pb, err)
		}
		if calls := f.drv.called(); len(calls) != 0 || f.running() != 0 {
			t.Fatalf("%s %s: driver calls %v, %d task(s) left", tc.tr, tc.vm, calls, f.running())
		}
	}
}

func TestPowerRequestChecks(t *testing.T) {
	f := newFake(t)
	_, err := power(f, "a", acliv1.PowerTransition(42), "")
	wantErr(t, err, codes.InvalidArgument, "power transition 42 is not valid; use kPowerOn, kPowerOff, kShutdown, kReboot, kReset or kPowerCycle")
	_, err = power(f, "a", acliv1.PowerTransition_kPowerOff, "h2")
	wantErr(t, err, codes.InvalidArgument, "host applies only to kPowerOn")
}

func TestPowerOnHoldsMemoryUntilRecorded(t *testing.T) {
	f := newFake(t)
	var heldDuring int64
	f.drv.onCall = func(string) { heldDuring = f.db.Reserved("uuid-h2") }
	pb, err := power(f, "b", acliv1.PowerTransition_kPowerOn, "h2")
	if err != nil || pb.Status != acliv1.TaskStatus_kSucceeded || last(pb) != "vm b powered on on host h2 (127.48.0.2)" {
		t.Fatalf("power on: %v %v", pb, err)
	}
	if heldDuring != 2*gib {
		t.Fatalf("held %d on h2 while the VM started, want %d", heldDuring, 2*gib)
	}
	if v := f.vm("b"); v.PowerState != acliv1.PowerState_kOn || v.HostUuid != "uuid-h2" || f.db.Reserved("uuid-h2") != 0 || f.arriving["uuid-h2"] != 0 {
		t.Fatalf("after power on: %v, %d held, %d arriving", v, f.db.Reserved("uuid-h2"), f.arriving["uuid-h2"])
	}
	if !slices.Equal(f.drv.called(), []string{"PowerOn b h2"}) {
		t.Fatalf("driver calls %v", f.drv.called())
	}
}

func TestPowerOnRefusals(t *testing.T) {
	f := newFake(t)
	f.placeErr = apierr.Precondition("NO_HOST", "cluster", "vm b (2 GiB) fits on no host")
	_, err := power(f, "b", acliv1.PowerTransition_kPowerOn, "")
	wantErr(t, err, codes.FailedPrecondition, "vm b (2 GiB) fits on no host")
	if f.running() != 0 || len(f.drv.called()) != 0 {
		t.Fatal("a refused placement started something")
	}

	// The target closed between the choice and the start: nothing runs.
	f.placeErr, f.targetErr = nil, errBoom
	pb, _ := power(f, "b", acliv1.PowerTransition_kPowerOn, "h2")
	if pb.Status != acliv1.TaskStatus_kFailed || pb.Error != "vm b cannot power on: boom" || len(f.drv.called()) != 0 {
		t.Fatalf("closed target: %v, calls %v", pb, f.drv.called())
	}

	// The commit refuses the VM where it started (h1 has 4 GiB free, the
	// VM is grown behind the fake's back): it is powered off again.
	f.targetErr = nil
	f.grow(t, "b", 6*gib)
	pb, _ = power(f, "b", acliv1.PowerTransition_kPowerOn, "h1")
	if pb.Status != acliv1.TaskStatus_kFailed || !slices.Equal(f.drv.called(), []string{"PowerOn b h1", "PowerOff b h1"}) {
		t.Fatalf("refused commit: %v, calls %v", pb, f.drv.called())
	}
	if v := f.vm("b"); v.PowerState != acliv1.PowerState_kOff || f.db.Reserved("uuid-h1") != 0 {
		t.Fatalf("after the refusal: %v, %d held", v, f.db.Reserved("uuid-h1"))
	}
}

func TestPowerChanges(t *testing.T) {
	for _, tc := range []struct {
		tr    acliv1.PowerTransition
		call  string
		line  string
		stops bool
	}{
		{acliv1.PowerTransition_kPowerOff, "PowerOff a h1", "vm a powered off on host h1", true},
		{acliv1.PowerTransition_kShutdown, "Shutdown a h1", "vm a shut down on host h1", true},
		{acliv1.PowerTransition_kReboot, "Reboot a h1", "vm a rebooted on host h1", false},
		{acliv1.PowerTransition_kReset, "Reset a h1", "vm a reset on host h1", false},
		{acliv1.PowerTransition_kPowerCycle, "Reset a h1", "vm a power cycled on host h1", false},
	} {
		f := newFake(t)
		pb, err := power(f, "a", tc.tr, "")
		if err != nil || pb.Status != acliv1.TaskStatus_kSucceeded || last(pb) != tc.line || !slices.Equal(f.drv.called(), []string{tc.call}) {
			t.Fatalf("%s: %v %v, calls %v", tc.tr, pb, err, f.drv.called())
		}
		v := f.vm("a")
		if stopped := v.PowerState == acliv1.PowerState_kOff && v.HostUuid == ""; stopped != tc.stops {
			t.Fatalf("%s: recorded %v", tc.tr, v)
		}
	}
	// The driver failing records nothing.
	f := newFake(t)
	f.drv.fail = map[string]error{"PowerOff": errBoom}
	pb, _ := power(f, "a", acliv1.PowerTransition_kPowerOff, "")
	if pb.Status != acliv1.TaskStatus_kFailed || f.vm("a").PowerState != acliv1.PowerState_kOn {
		t.Fatalf("failed power off: %v, %v", pb, f.vm("a"))
	}
}

// A request that had nothing to do when it was checked, but whose VM
// changed before its task held it, is carried out.
func TestPowerNoopThatChangedIsCarriedOut(t *testing.T) {
	f := newFake(t)
	f.onBegin = func() {
		f.onBegin = nil
		v := proto.Clone(f.vm("b")).(*acliv1.Vm)
		v.PowerState, v.HostUuid, v.HostName = acliv1.PowerState_kOn, "uuid-h2", "h2"
		if err := f.commit(vm.Outcome{Writes: []state.Write{{Key: state.VmKey(v.Uuid), Msg: v, Rev: state.AnyRev}}}); err != nil {
			t.Error(err)
		}
	}
	pb, err := power(f, "b", acliv1.PowerTransition_kPowerOff, "")
	if err != nil || last(pb) != "vm b powered off on host h2" {
		t.Fatalf("power off: %v %v", pb, err)
	}
	if calls := f.drv.called(); !slices.Equal(calls, []string{"PowerOff b h2"}) || f.vm("b").PowerState != acliv1.PowerState_kOff || f.running() != 0 {
		t.Fatalf("driver calls %v, b %v, %d task(s) left", calls, f.vm("b").PowerState, f.running())
	}
}
