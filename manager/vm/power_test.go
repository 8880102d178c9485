package vm_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
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

func entities(pb *acliv1.Task) []string {
	var out []string
	for _, e := range pb.GetEntities() {
		out = append(out, e.Name)
	}
	return out
}

// held is what a power-on left behind: the memory held and the arrivals
// counted on both hosts.
func (f *fake) held() (bytes int64, arriving int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.db.Reserved("uuid-h1") + f.db.Reserved("uuid-h2"), f.arriving["uuid-h1"] + f.arriving["uuid-h2"]
}

// A launched task starts on the record its request read: a VM changed
// after the read, before or after the task is registered (and placed),
// refuses the start as changed, and nothing is done with the old record:
// no driver call, no task, hold, memory or arrival left.
func TestLaunchedTaskStartsOnWhatItsRequestRead(t *testing.T) {
	describe := func(f *fake, name string) func() {
		return func() {
			f.onBegin, f.onStart = nil, nil
			v := proto.Clone(f.vm(name)).(*acliv1.Vm)
			v.Description += "edited"
			if err := f.commit(vm.Outcome{Writes: []state.Write{{Key: state.VmKey(v.Uuid), Msg: v, Rev: state.AnyRev}}}); err != nil {
				t.Error(err)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		vm      string
		atStart bool // changed just before the start commit, else before the task is registered
		do      func(f *fake) (*acliv1.Task, error)
	}{
		{"power off", "a", false, func(f *fake) (*acliv1.Task, error) { return power(f, "a", acliv1.PowerTransition_kPowerOff, "") }},
		{"reboot", "a", true, func(f *fake) (*acliv1.Task, error) { return power(f, "a", acliv1.PowerTransition_kReboot, "") }},
		{"power on", "b", false, func(f *fake) (*acliv1.Task, error) { return power(f, "b", acliv1.PowerTransition_kPowerOn, "") }},
		{"power on placed", "b", true, func(f *fake) (*acliv1.Task, error) { return power(f, "b", acliv1.PowerTransition_kPowerOn, "h2") }},
		{"delete", "b", false, func(f *fake) (*acliv1.Task, error) {
			return f.svc.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "b"})
		}},
		{"delete at start", "b", true, func(f *fake) (*acliv1.Task, error) {
			return f.svc.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "b"})
		}},
	} {
		f := newFake(t)
		before := f.vm(tc.vm)
		if tc.atStart {
			f.onStart = describe(f, tc.vm)
		} else {
			f.onBegin = describe(f, tc.vm)
		}
		pb, err := tc.do(f)
		if pb != nil {
			t.Fatalf("%s: started %v", tc.name, pb)
		}
		wantErr(t, err, codes.Aborted, "vm "+tc.vm+" changed while the request was checked; retry it")
		after := f.vm(tc.vm)
		if bytes, arriving := f.held(); len(f.drv.called()) != 0 || f.running() != 0 || f.db.Holder(after.GetUuid()) != "" || bytes != 0 || arriving != 0 {
			t.Fatalf("%s: calls %v, %d task(s), holder %q, %d bytes held, %d arriving", tc.name, f.drv.called(), f.running(), f.db.Holder(after.GetUuid()), bytes, arriving)
		}
		if after.Description != "edited" || after.PowerState != before.PowerState || after.HostUuid != before.HostUuid {
			t.Fatalf("%s: %v is left, was %v", tc.name, after, before)
		}
	}
}

// A VM another task takes between the request's checks and the start
// commit refuses the start as busy, naming that task, as a request that
// finds the VM busy on arrival is; the placement is let go.
func TestLaunchedTaskRefusedAtStartWhenTaken(t *testing.T) {
	f := newFake(t)
	var mig *tasks.Task
	f.onStart = func() {
		f.onStart = nil
		mig = f.take(acliv1.TaskOperation_kVmMigrate, "uuid-b")
	}
	_, err := power(f, "b", acliv1.PowerTransition_kPowerOn, "h2")
	wantErr(t, err, codes.Aborted, "vm b is busy with task "+mig.PB().Uuid+" (kVmMigrate); wait for it to finish")
	if bytes, arriving := f.held(); f.running() != 1 || f.db.Holder("uuid-b") != mig.PB().Uuid || bytes != 0 || arriving != 0 || len(f.drv.called()) != 0 {
		t.Fatalf("%d task(s), holder %q, %d bytes held, %d arriving, calls %v", f.running(), f.db.Holder("uuid-b"), bytes, arriving, f.drv.called())
	}
}

// A power change of a VM another task holds is refused as busy, before
// placement, leaving no task, hold or reservation.
func TestPowerOfABusyVmIsRefused(t *testing.T) {
	f := newFake(t)
	mig := f.take(acliv1.TaskOperation_kVmMigrate, "uuid-b")
	f.placeErr = errBoom // placement is not reached
	_, err := power(f, "b", acliv1.PowerTransition_kPowerOn, "")
	wantErr(t, err, codes.Aborted, "vm b is busy with task "+mig.PB().Uuid+" (kVmMigrate); wait for it to finish")
	if bytes, _ := f.held(); f.running() != 1 || f.db.Holder("uuid-b") != mig.PB().Uuid || bytes != 0 || len(f.drv.called()) != 0 {
		t.Fatalf("%d task(s), holder %q, %d bytes held, calls %v", f.running(), f.db.Holder("uuid-b"), bytes, f.drv.called())
	}
}

// A power-on's placement holds the memory and counts the VM arriving on
// its host from before the task starts until it ends, and the task names
// the host; a power change names the host the VM runs on.
func TestPowerOnCountsItsArrival(t *testing.T) {
	f := newFake(t)
	var bytes int64
	var arriving int
	var holder string
	f.onStart = func() { bytes, arriving = f.held() }
	f.drv.onCall = func(string) { holder = f.db.Holder("uuid-b") }
	pb, err := power(f, "b", acliv1.PowerTransition_kPowerOn, "h2")
	if err != nil || !slices.Equal(entities(pb), []string{"b", "h2"}) || bytes != 2*gib || arriving != 1 || holder != pb.Uuid {
		t.Fatalf("power on: %v %v; at its start %d bytes held, %d arriving; holder while it ran %q", pb, err, bytes, arriving, holder)
	}
	if bytes, arriving := f.held(); bytes != 0 || arriving != 0 || f.db.Holder("uuid-b") != "" {
		t.Fatalf("after it: %d bytes held, %d arriving, holder %q", bytes, arriving, f.db.Holder("uuid-b"))
	}
	pb, err = power(f, "b", acliv1.PowerTransition_kReboot, "")
	if err != nil || !slices.Equal(entities(pb), []string{"b", "h2"}) {
		t.Fatalf("reboot: %v %v", pb, err)
	}
}
