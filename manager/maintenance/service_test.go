package maintenance_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/tasks"
	"github.com/acli-dev/acli/manager/tasks/taskstest"
)

// fakeManager is the rest of the manager as maintenance.Service sees it:
// a lock table and task log like the manager's, the reservations plans
// make, placement over the DB's hosts and steps' VMs, and steps (the
// fakeCluster of steps_test.go) for each task's moves.
type fakeManager struct {
	db    *state.DB
	steps *fakeCluster

	mu       sync.Mutex
	n        int
	held     map[string]*tasks.Task
	targets  map[string][]*tasks.Task
	reserved map[string]string // VM -> host its memory is reserved on
	left     []*tasks.Task     // what a previous leader left running
	log      []string
	ended    []string
	running  sync.WaitGroup
}

func (f *fakeManager) Locked(fn func(l maintenance.Locked) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(fakeLocked{f})
}

func (f *fakeManager) Read(fn func(r maintenance.Reader)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(fakeLocked{f})
}

// fakeLocked is the fake's view under its lock.
type fakeLocked struct{ *fakeManager }

func (l fakeLocked) Holder(id string) *tasks.Task      { return l.held[id] }
func (l fakeLocked) Targets(host string) []*tasks.Task { return l.targets[host] }

func (l fakeLocked) Snapshot() *scheduler.Snapshot {
	s := &scheduler.Snapshot{}
	l.db.View(func(tx *state.Tx) {
		for _, h := range tx.Hosts() {
			st := scheduler.NodeNormal
			switch h.NodeState {
			case acliv1.NodeState_EnteringMaintenanceMode:
				st = scheduler.NodeEnteringMaintenance
			case acliv1.NodeState_EnteredMaintenanceMode:
				st = scheduler.NodeInMaintenance
			case acliv1.NodeState_kNodeDown:
				st = scheduler.NodeDown
			}
			s.Hosts = append(s.Hosts, scheduler.Host{UUID: h.Uuid, Name: h.Name, IP: h.HypervisorIp, Cores: 16,
				MemoryBytes: h.MemoryBytes, Schedulable: h.Schedulable, State: st})
		}
	})
	l.steps.mu.Lock()
	for _, v := range l.steps.vms {
		sv := scheduler.VM{UUID: v.Uuid, Name: v.Name, VCPUs: 1, MemoryBytes: v.MemoryBytes, Host: v.HostUuid, Agent: v.AgentVm}
		if v.PowerState == acliv1.PowerState_kOn {
			sv.Power = scheduler.PowerOn
		}
		s.VMs = append(s.VMs, sv)
	}
	l.steps.mu.Unlock()
	slices.SortFunc(s.VMs, func(a, b scheduler.VM) int { return strings.Compare(a.Name, b.Name) })
	s.Recount()
	return s
}

func (l fakeLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *tasks.Task {
	l.n++
	t := tasks.New(&acliv1.Task{Uuid: fmt.Sprintf("task-%d", l.n), Operation: op, Entities: refs}, locks...)
	for _, id := range locks {
		l.held[id] = t
	}
	l.Adopt(t)
	return t
}

func (l fakeLocked) Adopt(t *tasks.Task, locks ...string) {
	for _, id := range locks {
		l.held[id] = t
	}
	t.Locks = append(t.Locks, locks...)
	t.Release = func() {
		for _, vm := range slices.Sorted(maps.Keys(l.reserved)) {
			l.log = append(l.log, fmt.Sprintf("released %s on %s", vm, l.reserved[vm]))
		}
		clear(l.reserved)
		for h, ts := range l.targets {
			l.targets[h] = slices.DeleteFunc(ts, func(x *tasks.Task) bool { return x == t })
		}
	}
}

func (l fakeLocked) Reserve(t *tasks.Task, plan *scheduler.Plan) {
	for _, s := range plan.Steps {
		if s.Action == scheduler.ActionMigrate || s.Action == scheduler.ActionRestart {
			l.reserved[s.VM.Name] = s.Target.Name
			l.steps.mu.Lock()
			l.steps.held[s.VM.UUID] = true // the steps give it back
			l.steps.mu.Unlock()
			l.log = append(l.log, fmt.Sprintf("reserved %s on %s", s.VM.Name, s.Target.Name))
		}
		if s.Action == scheduler.ActionMigrate {
			l.targets[s.Target.UUID] = append(l.targets[s.Target.UUID], t)
		}
	}
}

// end ends t as the task engine does: its locks (and the DB's holds) and
// reservations go.
func (f *fakeManager) end(t *tasks.Task, how string) {
	if _, err := f.db.Update(context.Background(), func(tx *state.Tx) error { tx.LetGo(t.PB().Uuid, t.Locks...); return nil }); err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range t.Locks {
		if f.held[id] == t {
			delete(f.held, id)
		}
	}
	if t.Release != nil {
		t.Release()
	}
	f.ended = append(f.ended, t.PB().Operation.String()+": "+how)
}

func (f *fakeManager) Launch(ctx context.Context, t *tasks.Task, w func(ctx context.Context) (maintenance.Done, error)) (*acliv1.Task, error) {
	f.running.Add(1)
	go func() {
		defer f.running.Done()
		d, err := w(ctx)
		if err == nil {
			// The manager commits each VM as it moves; the fake steps keep
			// them, so they are committed first here.
			f.steps.mu.Lock()
			_, err = f.db.Update(ctx, func(tx *state.Tx) error {
				for _, v := range f.steps.vms {
					tx.Put(state.VmKey(v.Uuid), v, state.AnyRev)
				}
				return nil
			})
			f.steps.mu.Unlock()
		}
		if err == nil {
			_, err = f.db.Update(ctx, func(tx *state.Tx) error {
				for _, w := range d.Writes {
					tx.Put(w.Key, w.Msg, w.Rev)
				}
				return nil
			})
		}
		if err != nil {
			f.end(t, "failed: "+err.Error())
			return
		}
		if d.Committed != nil {
			d.Committed()
		}
		f.end(t, d.Message)
	}()
	return t.PB(), nil
}

func (f *fakeManager) Interrupted() []*tasks.Task { return f.left }

func (f *fakeManager) CarryOn(t *tasks.Task, w func(ctx context.Context) (maintenance.Done, error)) {
	if _, err := f.Launch(context.Background(), t, w); err != nil {
		panic(err)
	}
}

func (f *fakeManager) Forget(t *tasks.Task) { f.end(t, "forgotten") }

func (f *fakeManager) SetHost(ctx context.Context, id string, c state.HostChange) (next *acliv1.Host, err error) {
	_, err = f.db.Update(ctx, func(tx *state.Tx) error {
		if next, err = state.TransitionHost(tx.Host(id), c); err == nil {
			tx.Put(state.HostKey(id), next, tx.Rev(state.HostKey(id)))
		}
		return err
	})
	return next, err
}

func (f *fakeManager) AwaitArrivals(context.Context, string) error { return nil }
func (f *fakeManager) Steps(*tasks.Task) maintenance.Cluster       { return f.steps }
func (f *fakeManager) Log(_ *tasks.Task, line string)              { f.told("log: " + line) }
func (f *fakeManager) MaxMigrations() int                          { return 2 }

// commitVms commits the VMs as the steps left them: the return reads
// which VMs left the host from the committed records.
func (f *fakeManager) commitVms(t *testing.T) {
	t.Helper()
	f.steps.mu.Lock()
	defer f.steps.mu.Unlock()
	_, err := f.db.Update(context.Background(), func(tx *state.Tx) error {
		for _, v := range f.steps.vms {
			tx.Put(state.VmKey(v.Uuid), v, state.AnyRev)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fakeManager) told(line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, line)
}

// newService is the service over an RF2 cluster of three 8 GiB hosts,
// h1-h3 (127.42.0.1-3), and the VMs of steps.
func newService(t *testing.T, vms ...*acliv1.Vm) (*maintenance.Service, *taskstest.Starter, *fakeManager) {
	t.Helper()
	db := statetest.Open(t)
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Uuid: "uuid-c", Name: "c", RedundancyFactor: 2}, 0)
		for i := 1; i <= 3; i++ {
			h := &acliv1.Host{Uuid: fmt.Sprintf("uuid-h%d", i), Name: fmt.Sprintf("h%d", i), HypervisorIp: fmt.Sprintf("127.42.0.%d", i),
				CvmIp: fmt.Sprintf("127.42.1.%d", i), MemoryBytes: 8 << 30, Schedulable: true,
				NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp}
			tx.Put(state.HostKey(h.Uuid), h, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := taskstest.New(db)
	f := &fakeManager{db: db, steps: newFakeCluster(vms...), held: map[string]*tasks.Task{},
		targets: map[string][]*tasks.Task{}, reserved: map[string]string{}}
	clear(f.steps.held) // Reserve makes them
	f.commitVms(t)
	s := &maintenance.Service{
		DB: db, Tasks: ts, M: f,
		Publish: func(typ, task string, refs []*acliv1.EntityRef, format string, args ...any) {
			f.told(typ + ": " + fmt.Sprintf(format, args...))
		},
		CvmChanged: func(prev, next *acliv1.Host) {
			f.told(fmt.Sprintf("cvm of %s: %v -> %v", next.Name, prev.CvmState, next.CvmState))
		},
	}
	return s, ts, f
}

func wantCode(t *testing.T, err error, code codes.Code, sub string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), sub) {
		t.Fatalf("got %v, want %s containing %q", err, code, sub)
	}
}

func host(t *testing.T, s *maintenance.Service, id string) (h *acliv1.Host) {
	t.Helper()
	s.DB.View(func(tx *state.Tx) { h = tx.Host(id) })
	return h
}

func TestServiceCvmMaintenance(t *testing.T) {
	s, ts, f := newService(t)
	ctx := context.Background()
	req := func(h string) *acliv1.CvmMaintenanceRequest { return &acliv1.CvmMaintenanceRequest{Host: h} }
	if _, err := s.EnterCvmMaintenanceMode(ctx, req("h1")); err != nil {
		t.Fatal(err)
	}
	if h := host(t, s, "uuid-h1"); h.CvmState != acliv1.CvmState_kCvmMaintenance || !h.CvmMaintenanceRequested {
		t.Fatalf("h1 after enter: %v", h)
	}
	if _, err := s.EnterCvmMaintenanceMode(ctx, req("127.42.0.1")); err != nil {
		t.Fatal(err)
	}
	// RF2: with h1's CVM out, nothing else may go out.
	_, err := s.EnterCvmMaintenanceMode(ctx, req("h2"))
	wantCode(t, err, codes.FailedPrecondition, "cvm 127.42.1.2 of host h2 (127.42.0.2) cannot enter maintenance mode")
	_, err = s.EnterCvmMaintenanceMode(ctx, req("h9"))
	wantCode(t, err, codes.NotFound, `host "h9" not found`)
	if _, err := s.ExitCvmMaintenanceMode(ctx, req("h1")); err != nil {
		t.Fatal(err)
	}
	// A running host.enter_maintenance_mode of h3 counts against the
	// budget before it commits anything.
	f.held["uuid-h3"] = tasks.New(&acliv1.Task{Uuid: "task-h3", Operation: acliv1.TaskOperation_kHostEnterMaintenanceMode})
	_, err = s.EnterCvmMaintenanceMode(ctx, req("h2"))
	wantCode(t, err, codes.FailedPrecondition, "cannot take out the CVM of h2")
	delete(f.held, "uuid-h3")
	// A host another task holds is refused.
	other, err := ts.Begin(ctx, "host", acliv1.TaskOperation_kHostEnterMaintenanceMode, []*acliv1.EntityRef{{Name: "h2"}}, "uuid-h2")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.EnterCvmMaintenanceMode(ctx, req("h2"))
	wantCode(t, err, codes.Aborted, "host h2 is busy with task")
	other.Drop()
	if h := host(t, s, "uuid-h2"); h.CvmState != acliv1.CvmState_kCvmUp || h.CvmMaintenanceRequested {
		t.Fatalf("a refused request changed h2: %v", h)
	}
	want := []string{
		"cvm: cvm 127.42.1.1 of host h1 (127.42.0.1) entered maintenance mode",
		"cvm of h1: kCvmUp -> kCvmMaintenance",
		"cvm: cvm 127.42.1.1 of host h1 (127.42.0.1) exited maintenance mode",
		"cvm of h1: kCvmMaintenance -> kCvmUp",
	}
	if got := strings.Join(f.log, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("told:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	ended := []string{
		"kCvmEnterMaintenanceMode: cvm 127.42.1.1 of host h1 (127.42.0.1) entered maintenance mode",
		"kCvmEnterMaintenanceMode: cvm 127.42.1.1 of host h1 (127.42.0.1) is already in maintenance mode",
		"kCvmEnterMaintenanceMode: dropped",
		"kCvmExitMaintenanceMode: cvm 127.42.1.1 of host h1 (127.42.0.1) exited maintenance mode",
		"kCvmEnterMaintenanceMode: dropped",
		"kHostEnterMaintenanceMode: dropped",
	}
	if got := strings.Join(ts.Ended(), "\n"); got != strings.Join(ended, "\n") {
		t.Fatalf("tasks ended:\n%s\nwant:\n%s", got, strings.Join(ended, "\n"))
	}
	if h := ts.Held(); len(h) != 0 {
		t.Fatalf("locks left held: %v", h)
	}
}

// Enter plans and reserves under the manager's lock, records
// EnteringMaintenanceMode, drains the host and records
// EnteredMaintenanceMode with the task's end; the budget then refuses a
// second host; exit brings every VM back.
func TestServiceEnterAndExitMaintenance(t *testing.T) {
	s, ts, f := newService(t, fakeVM("a", "h1"), fakeVM("b", "h1"), fakeVM("c", "h2"), fakeVM("ag", "h1", agent))
	ctx := context.Background()
	check, err := s.EnterMaintenanceModeCheck(ctx, &acliv1.EnterMaintenanceModeRequest{Host: "h1"})
	if err != nil || !check.Ok || len(check.Plan) != 3 {
		t.Fatalf("check %v %v", check, err)
	}
	_, err = s.EnterMaintenanceMode(ctx, &acliv1.EnterMaintenanceModeRequest{Host: "h1", MaxConcurrentMigrations: 3})
	wantCode(t, err, codes.InvalidArgument, "max_concurrent_migrations 3 is out of range; use 1 to 2")
	if _, err := s.EnterMaintenanceMode(ctx, &acliv1.EnterMaintenanceModeRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	f.running.Wait()
	if h := host(t, s, "uuid-h1"); h.NodeState != acliv1.NodeState_EnteredMaintenanceMode || !h.MaintenanceRequested {
		t.Fatalf("h1 after enter: %v", h)
	}
	for _, id := range []string{"a", "b"} {
		if v := f.steps.Vm(id); v.HostUuid == "uuid-h1" || v.OriginalHostUuid != "uuid-h1" {
			t.Fatalf("vm %s after the evacuation: %v", id, v)
		}
	}
	if v := f.steps.Vm("ag"); v.PowerState != acliv1.PowerState_kOff || v.OriginalHostUuid != "uuid-h1" {
		t.Fatalf("agent vm after the evacuation: %v", v)
	}
	// RF2: h1 is out, so h2 may not go; the check lists the same blocker.
	_, err = s.EnterMaintenanceMode(ctx, &acliv1.EnterMaintenanceModeRequest{Host: "h2"})
	wantCode(t, err, codes.FailedPrecondition, "host h2 (127.42.0.2) cannot enter maintenance mode")
	check, _ = s.EnterMaintenanceModeCheck(ctx, &acliv1.EnterMaintenanceModeRequest{Host: "h2"})
	if check.Ok || len(check.Blockers) != 1 || check.Blockers[0].Type != maintenance.Redundancy {
		t.Fatalf("check of h2: %v", check)
	}
	if _, err := s.EnterMaintenanceMode(ctx, &acliv1.EnterMaintenanceModeRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	f.commitVms(t)
	if _, err := s.ExitMaintenanceMode(ctx, &acliv1.ExitMaintenanceModeRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	f.running.Wait()
	if h := host(t, s, "uuid-h1"); h.NodeState != acliv1.NodeState_AcropolisNormal || h.MaintenanceRequested {
		t.Fatalf("h1 after exit: %v", h)
	}
	for _, id := range []string{"a", "b", "ag"} {
		if v := f.steps.Vm(id); v.HostUuid != "uuid-h1" || v.PowerState != acliv1.PowerState_kOn || v.OriginalHostUuid != "" {
			t.Fatalf("vm %s after the return: %v", id, v)
		}
	}
	f.commitVms(t)
	if _, err := s.ExitMaintenanceMode(ctx, &acliv1.ExitMaintenanceModeRequest{Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	f.steps.check(t)
	ended := []string{
		"kHostEnterMaintenanceMode: host h1 (127.42.0.1) entered maintenance mode: 2 VM(s) migrated, 1 shut down",
		"kHostExitMaintenanceMode: host h1 (127.42.0.1) exited maintenance mode: 2 VM(s) migrated back, 1 powered on",
	}
	if got := strings.Join(f.ended, "\n"); got != strings.Join(ended, "\n") {
		t.Fatalf("tasks ended:\n%s\nwant:\n%s", got, strings.Join(ended, "\n"))
	}
	// The requests that change nothing are quick tasks of their own.
	quick := []string{
		"kHostEnterMaintenanceMode: host h1 (127.42.0.1) is already in maintenance mode",
		"kHostExitMaintenanceMode: host h1 (127.42.0.1) is not in maintenance mode",
	}
	if got := strings.Join(ts.Ended(), "\n"); got != strings.Join(quick, "\n") {
		t.Fatalf("quick tasks ended:\n%s\nwant:\n%s", got, strings.Join(quick, "\n"))
	}
	if len(f.held) != 0 || len(f.reserved) != 0 || len(f.targets["uuid-h2"])+len(f.targets["uuid-h3"])+len(f.targets["uuid-h1"]) != 0 {
		t.Fatalf("left held %v, reserved %v, targets %v", f.held, f.reserved, f.targets)
	}
	var told []string
	for _, l := range f.log {
		if !strings.HasPrefix(l, "log: ") {
			told = append(told, l)
		}
	}
	want := []string{
		"reserved a on h3", "reserved b on h2",
		"host: host h1 (127.42.0.1) is entering maintenance mode",
		"host: host h1 (127.42.0.1) entered maintenance mode",
		"released a on h3", "released b on h2",
		"reserved ag on h1", "reserved a on h1", "reserved b on h1",
		"host: host h1 (127.42.0.1) exited maintenance mode",
		"released a on h1", "released ag on h1", "released b on h1",
	}
	if got := strings.Join(told, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("told:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// setHostState commits h's node state as a previous leader left it.
func setHostState(t *testing.T, s *maintenance.Service, id string, st acliv1.NodeState) {
	t.Helper()
	_, err := s.DB.Update(context.Background(), func(tx *state.Tx) error {
		h := proto.Clone(tx.Host(id)).(*acliv1.Host)
		h.NodeState, h.Schedulable, h.MaintenanceRequested = st, st == acliv1.NodeState_AcropolisNormal, st != acliv1.NodeState_AcropolisNormal
		tx.Put(state.HostKey(id), h, tx.Rev(state.HostKey(id)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// holds commits task's takes (take) or let-gos of ids.
func holds(t *testing.T, s *maintenance.Service, task string, take bool, ids ...string) {
	t.Helper()
	_, err := s.DB.Update(context.Background(), func(tx *state.Tx) error {
		if take {
			tx.Take(task, ids...)
		} else {
			tx.LetGo(task, ids...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An evacuation a previous leader left running is carried on under its
// task: a commit takes the host for it again, what is still there is
// planned and reserved again, and the run ends it in maintenance. One
// whose host is gone, left maintenance or is held by another task stops,
// holding and reserving nothing, and ends with its reason.
func TestServiceResumesAnEvacuation(t *testing.T) {
	s, _, f := newService(t, fakeVM("a", "h1"), fakeVM("b", "h1"), fakeVM("c", "h2"))
	ctx := context.Background()
	setHostState(t, s, "uuid-h1", acliv1.NodeState_EnteringMaintenanceMode)
	left := func(uuid string) *tasks.Task {
		return tasks.New(&acliv1.Task{Uuid: uuid, Operation: acliv1.TaskOperation_kHostEnterMaintenanceMode,
			Entities: []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kHost, Uuid: "uuid-h1", Name: "h1"}}})
	}

	holds(t, s, "other", true, "uuid-h1")
	_, err := s.Resume(ctx, left("left"))
	wantCode(t, err, codes.Aborted, "host h1 (127.42.0.1) is busy with task other; the evacuation stops there")
	holds(t, s, "other", false, "uuid-h1")
	setHostState(t, s, "uuid-h1", acliv1.NodeState_AcropolisNormal)
	_, err = s.Resume(ctx, left("left"))
	wantCode(t, err, codes.FailedPrecondition, "host h1 (127.42.0.1) is AcropolisNormal, no longer entering maintenance mode")
	gone := left("left")
	gone.PB().Entities[0].Uuid = "uuid-h9"
	_, err = s.Resume(ctx, gone)
	wantCode(t, err, codes.NotFound, "host h1 is gone; the evacuation cannot go on")
	if len(f.held) != 0 || len(f.reserved) != 0 || len(f.log) != 0 || s.DB.Holder("uuid-h1") != "" {
		t.Fatalf("refused resumes left held %v (DB: %q), reserved %v, log %v", f.held, s.DB.Holder("uuid-h1"), f.reserved, f.log)
	}

	setHostState(t, s, "uuid-h1", acliv1.NodeState_EnteringMaintenanceMode)
	task := left("left")
	run, err := s.Resume(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	if f.held["uuid-h1"] != task || s.DB.Holder("uuid-h1") != "left" || len(f.reserved) != 2 {
		t.Fatalf("resumed task: held %v (DB: %q), reserved %v", f.held, s.DB.Holder("uuid-h1"), f.reserved)
	}
	// The host is the resumed task's: another resume of it is refused.
	_, err = s.Resume(ctx, left("again"))
	wantCode(t, err, codes.Aborted, "host h1 (127.42.0.1) is busy with task left")
	d, err := run(ctx)
	if err != nil || d.Message != "host h1 (127.42.0.1) entered maintenance mode: 2 VM(s) migrated, 0 shut down" {
		t.Fatalf("run: %v %v", d, err)
	}
	if f.log[2] != "log: resumed by a new leader: 2 VM(s) still on h1 (127.42.0.1) planned again" {
		t.Fatalf("log %q", f.log)
	}
	for _, id := range []string{"a", "b"} {
		if v := f.steps.Vm(id); v.HostUuid == "uuid-h1" {
			t.Fatalf("vm %s after the resumed evacuation: %v", id, v)
		}
	}
	f.end(task, "done")
	if s.DB.Holder("uuid-h1") != "" {
		t.Fatalf("host still held by %q after the task", s.DB.Holder("uuid-h1"))
	}
}

// The evacuations left running are carried on (CarryOn) and end as their
// runs do: one that cannot go on ends with its reason.
func TestServiceResumesWhatALeaderLeft(t *testing.T) {
	s, _, f := newService(t, fakeVM("a", "h1"), fakeVM("c", "h2"))
	setHostState(t, s, "uuid-h1", acliv1.NodeState_EnteringMaintenanceMode)
	f.left = []*tasks.Task{
		tasks.New(&acliv1.Task{Uuid: "t1", Operation: acliv1.TaskOperation_kHostEnterMaintenanceMode,
			Entities: []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kHost, Uuid: "uuid-h1", Name: "h1"}}}),
		tasks.New(&acliv1.Task{Uuid: "t2", Operation: acliv1.TaskOperation_kHostEnterMaintenanceMode,
			Entities: []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kHost, Uuid: "uuid-h2", Name: "h2"}}}),
	}
	s.ResumeInterrupted(context.Background())
	f.running.Wait()
	slices.Sort(f.ended)
	want := []string{
		"kHostEnterMaintenanceMode: failed: rpc error: code = FailedPrecondition desc = host h2 (127.42.0.2) is AcropolisNormal, no longer entering maintenance mode; the evacuation stops there",
		"kHostEnterMaintenanceMode: host h1 (127.42.0.1) entered maintenance mode: 1 VM(s) migrated, 0 shut down",
	}
	if got := strings.Join(f.ended, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("ended:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if h := host(t, s, "uuid-h1"); h.NodeState != acliv1.NodeState_EnteredMaintenanceMode {
		t.Fatalf("h1 after the resumed evacuation: %v", h)
	}
	if s.DB.Holder("uuid-h1")+s.DB.Holder("uuid-h2") != "" || len(f.held) != 0 || len(f.reserved) != 0 {
		t.Fatalf("left held %v (DB %q %q), reserved %v", f.held, s.DB.Holder("uuid-h1"), s.DB.Holder("uuid-h2"), f.reserved)
	}
}

// A host that came back from a failure EnteringMaintenanceMode has its
// evacuation carried on by a task of its own once it reported what it
// runs; one held by a task or no longer entering maintenance is left
// alone, and one the redundancy budget forbids fails with the preflight's
// reason and stays EnteringMaintenanceMode.
func TestServiceFinishesAHostThatCameBack(t *testing.T) {
	s, _, f := newService(t, fakeVM("a", "h1"), fakeVM("b", "h1"), fakeVM("c", "h2"))
	s.ReportWait = time.Hour // the report, not the bound, lets it plan
	ctx := context.Background()
	setHostState(t, s, "uuid-h1", acliv1.NodeState_EnteringMaintenanceMode)

	f.held["uuid-h1"] = tasks.New(&acliv1.Task{Uuid: "other"})
	s.HostBack(ctx, "uuid-h1")
	delete(f.held, "uuid-h1")
	s.HostBack(ctx, "uuid-h2")
	if f.n != 0 {
		t.Fatalf("%d task(s) begun for a held host and one in service", f.n)
	}

	s.HostBack(ctx, "uuid-h1")
	s.Reported("uuid-h1")
	f.running.Wait()
	if h := host(t, s, "uuid-h1"); h.NodeState != acliv1.NodeState_EnteredMaintenanceMode {
		t.Fatalf("h1 after its evacuation went on: %v", h)
	}
	for _, id := range []string{"a", "b"} {
		if v := f.steps.Vm(id); v.HostUuid == "uuid-h1" {
			t.Fatalf("vm %s after the evacuation: %v", id, v)
		}
	}
	if !slices.Contains(f.log, "log: host h1 (127.42.0.1) came back from a failure entering maintenance mode; its evacuation goes on") {
		t.Fatalf("log %q", f.log)
	}

	// A task moving VMs onto h1 refuses it as it would the operator's
	// request. (The redundancy budget never does: a host whose
	// maintenance was asked counts as out already.)
	s2, _, f2 := newService(t, fakeVM("a", "h1"))
	setHostState(t, s2, "uuid-h1", acliv1.NodeState_EnteringMaintenanceMode)
	mover := tasks.New(&acliv1.Task{Uuid: "mover", Operation: acliv1.TaskOperation_kVmMigrate, Entities: []*acliv1.EntityRef{{Name: "c"}}})
	f2.targets["uuid-h1"] = []*tasks.Task{mover}
	s2.HostBack(ctx, "uuid-h1")
	f2.running.Wait()
	want := []string{"kHostEnterMaintenanceMode: host h1 (127.42.0.1) entered maintenance mode: 2 VM(s) migrated, 0 shut down"}
	if got := strings.Join(f.ended, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("ended:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if len(f2.ended) != 1 || !strings.Contains(f2.ended[0], "failed: rpc error: code = FailedPrecondition desc = host h1 (127.42.0.1) cannot enter maintenance mode: host h1 (127.42.0.1) is the target of running task mover (kVmMigrate of c); wait for it to finish") {
		t.Fatalf("ended %q", f2.ended)
	}
	if h := host(t, s2, "uuid-h1"); h.NodeState != acliv1.NodeState_EnteringMaintenanceMode || len(f2.reserved) != 0 || len(f2.held) != 0 || s2.DB.Holder("uuid-h1") != "" {
		t.Fatalf("h1 after a refused evacuation: %v; reserved %v, held %v", h, f2.reserved, f2.held)
	}
}
