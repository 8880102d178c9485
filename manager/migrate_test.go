package manager_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

// TestMigrateWithoutHostAlwaysMoves: asked to move, the VM moves to
// another host every time, and the task names the target.
func TestMigrateWithoutHostAlwaysMoves(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	vmOn(t, c, "app", 4*gib, "h1")
	for i := 0; i < 5; i++ {
		before := getVm(t, c, "app").HostUuid
		task, err := c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "app"})
		if err != nil {
			t.Fatal(err)
		}
		if len(task.Entities) != 3 || task.Entities[2].Uuid == before {
			t.Fatalf("migrate task entities %v", task.Entities)
		}
		final := succeed(t, c)(task, nil)
		after := getVm(t, c, "app")
		if after.HostUuid == before || after.HostUuid != task.Entities[2].Uuid {
			t.Fatalf("round %d: vm stayed on %s (target %s)", i, after.HostName, task.Entities[2].Name)
		}
		if !strings.Contains(messages(final), "migrated from") || final.Migration == nil || final.Migration.Round < 1 {
			t.Fatalf("migrate task: %v migration %v", final.Messages, final.Migration)
		}
		checkInvariants(t, h)
	}
	// Named host: its own host is refused with a way out.
	cur := getVm(t, c, "app")
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "app", Host: cur.HostName})), codes.FailedPrecondition, "omit host= to let the scheduler choose")
	// No eligible host: each candidate and its rejection.
	for _, hh := range []string{"h1", "h2", "h3"} {
		if hh != cur.HostName {
			succeed(t, c)(c.host.UpdateHost(bg, &acliv1.UpdateHostRequest{Host: hh, Schedulable: proto.Bool(false), Reason: "rack move"}))
		}
	}
	st := wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "app"})), codes.FailedPrecondition, "cannot migrate vm app: no eligible host")
	pf := detail[*errdetails.PreconditionFailure](t, st)
	if len(pf.Violations) != 3 {
		t.Fatalf("violations %v", pf.Violations)
	}
	for _, v := range pf.Violations {
		want := "not schedulable (rack move)"
		if v.Subject == "host:"+cur.HostName {
			want = "current host"
		}
		if !strings.Contains(v.Description, want) {
			t.Fatalf("violation %v, want %q", v, want)
		}
	}
}

func TestMigrateRules(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	vmOn(t, c, "gpu", 4*gib, "h1", func(r *acliv1.CreateVmRequest) { r.Passthrough = true })
	vmOn(t, c, "agent", gib, "h1", agent)
	vmOn(t, c, "hot", 8*gib, "h1", func(r *acliv1.CreateVmRequest) { r.DirtyRateMbps = 2000 })
	vmOn(t, c, "big", 253*gib, "h3")

	// live=false is suggested where it would serve (h2 has room), not
	// where it would be refused too (h3 has none).
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "gpu"})), codes.FailedPrecondition, "passthrough device and cannot live-migrate (use live=false)")
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "gpu", Host: "h3"})), codes.FailedPrecondition,
		"vm gpu cannot move, live or offline: vm gpu has a passthrough device and cannot live-migrate; cannot move vm gpu to h3 (127.20.0.23): insufficient memory")
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "agent"})), codes.FailedPrecondition, "agent VM and stays on its host")
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "gpu", Host: "h3", Live: proto.Bool(false)})), codes.FailedPrecondition, "insufficient memory")
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "gpu", Host: "h8"})), codes.NotFound, `host "h8" not found`)
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "gpu", BandwidthMbps: -1})), codes.InvalidArgument, "bandwidth_mbps -1 must not be negative")

	// Offline: off, move, on.
	final := succeed(t, c)(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "gpu", Host: "h2", Live: proto.Bool(false)}))
	if v := getVm(t, c, "gpu"); v.HostName != "h2" || v.PowerState != acliv1.PowerState_kOn || !strings.Contains(messages(final), "(offline)") {
		t.Fatalf("offline migration: %v %v", v, final.Messages)
	}
	// A guest dirtying memory faster than the link fails to converge and stays put.
	hot, err := c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "hot"})
	final = wait(t, c, hot, err)
	if final.Status != acliv1.TaskStatus_kFailed || !strings.Contains(final.Error, "failure to converge") {
		t.Fatalf("hot migration: %v %q", final.Status, final.Error)
	}
	if v := getVm(t, c, "hot"); v.HostName != "h1" {
		t.Fatalf("hot vm moved to %s", v.HostName)
	}
	// ... unless the bandwidth is raised.
	succeed(t, c)(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "hot", BandwidthMbps: 40000}))
	checkInvariants(t, h)
	evs, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "migration"})
	if len(evs.Events) < 4 {
		t.Fatalf("migration events %v", evs.Events)
	}
	// The failed attempt warned early, naming the dirty rate and the bandwidth.
	warned := 0
	for _, e := range evs.Events {
		if strings.Contains(e.Message, "migration of vm hot to h2 (127.20.0.22) is not converging: the guest dirties memory at 2.0 GiB/s, the stream sends 1.2 GiB/s (10000 Mb/s)") {
			warned++
		}
	}
	if warned != 1 {
		t.Fatalf("%d not-converging warnings in %v", warned, evs.Events)
	}
}

// TestMigrationConflicts: a second migration of a migrating VM, and
// maintenance of a host receiving a VM, are refused, not queued.
func TestMigrationConflicts(t *testing.T) {
	// The gate holds the migration after round 1 until the checks are done.
	gate := newMigrationGate("slow")
	h := managertest.New(t, managertest.Options{Hosts: 3, Speed: 5, SimOptions: gate.options()})
	c := newClients(h.Conn)
	vmOn(t, c, "slow", 8*gib, "h1")
	task, err := c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "slow", Host: "h2"})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "slow"})), codes.Aborted, "vm slow is busy with task "+task.Uuid+" (kVmMigrate)")
	wantCode(t, errOf(enter(c, "h2", 0)), codes.FailedPrecondition, "host h2 (127.20.0.22) is the target of running task "+task.Uuid)
	// The task streams pre-copy progress.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := c.task.GetTask(bg, &acliv1.GetTaskRequest{Uuid: task.Uuid})
		if got.Migration != nil && strings.Contains(got.ProgressMessage, "round 1") {
			if !strings.Contains(got.ProgressMessage, "est. downtime") || got.Migration.TargetHostUuid != task.Entities[2].Uuid {
				t.Fatalf("progress %q %v", got.ProgressMessage, got.Migration)
			}
			break
		}
		if time.Now().After(deadline) || got.Status != acliv1.TaskStatus_kRunning {
			t.Fatalf("no progress seen: %v %q", got.Status, got.ProgressMessage)
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: "slow"})), codes.Aborted, "vm slow is busy with task "+task.Uuid+" (kVmMigrate)")
	gate.release("slow")
	succeed(t, c)(task, nil)
	// Once the migration is done, h2 may go.
	if chk, _ := c.host.EnterMaintenanceModeCheck(bg, &acliv1.EnterMaintenanceModeRequest{Host: "h2"}); !chk.Ok {
		t.Fatalf("check after the migration: %v", chk.Blockers)
	}
}
