package hostsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// fakeManager is the manager as the Reconciler sees it, over a real
// state.DB: the lock, the busy table (held), when VMs settled, the task
// table, and what was launched and published.
type fakeManager struct {
	t       *testing.T
	db      *state.DB
	mu      sync.Mutex // the manager's lock
	locked  bool       // mu is held
	held    map[string]string
	settled *Settled
	table   *tasks.Table
	closing bool

	// beforeLocked runs before Locked takes the lock (a task or a commit
	// racing the report); beforeRecord inside Record, before its commit.
	beforeLocked, beforeRecord func()
	recordErr                  error // Record's answer instead of a commit

	records   int
	progress  []string
	results   []string // each launched task's closing line or error
	published []string // "refs: msg"
}

func newFakeManager(t *testing.T, db *state.DB) *fakeManager {
	return &fakeManager{t: t, db: db, held: map[string]string{}, settled: &Settled{DB: db}, table: tasks.NewTable(10)}
}

func (f *fakeManager) Read(fn func(r Reader)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(fakeLocked{f})
}

func (f *fakeManager) Locked(fn func(l Locked)) {
	if f.beforeLocked != nil {
		f.beforeLocked()
	}
	f.mu.Lock()
	f.locked = true
	defer func() { f.locked = false; f.mu.Unlock() }()
	fn(fakeLocked{f})
}

// Launch runs the work at once and records how it ended; the task lets go
// of what it held.
func (f *fakeManager) Launch(t *tasks.Task, w func(ctx context.Context) (string, error)) error {
	if f.locked {
		f.t.Error("a task launched under the manager's lock")
	}
	msg, err := w(context.Background())
	if err != nil {
		msg = "failed: " + err.Error()
	}
	f.results = append(f.results, msg)
	for _, id := range t.Locks {
		delete(f.held, id)
	}
	return nil
}

func (f *fakeManager) Progress(t *tasks.Task, percent int32, format string, args ...any) {
	f.progress = append(f.progress, fmt.Sprintf("%d%% "+format, append([]any{percent}, args...)...))
}

func (f *fakeManager) Publish(refs []*acliv1.EntityRef, msg string) {
	var names []string
	for _, r := range refs {
		names = append(names, r.Kind.String()+":"+r.Name)
	}
	f.published = append(f.published, strings.Join(names, ",")+": "+msg)
}

type fakeLocked struct{ f *fakeManager }

func (l fakeLocked) Busy(vm string) bool { return l.f.held[vm] != "" }

func (l fakeLocked) Record(ctx context.Context, next *acliv1.Vm, rev int64) error {
	f := l.f
	if !f.locked {
		f.t.Error("Record outside the manager's lock")
	}
	f.records++
	if f.beforeRecord != nil {
		f.beforeRecord()
	}
	if f.recordErr != nil {
		return f.recordErr
	}
	_, err := f.db.Update(ctx, func(tx *state.Tx) error {
		tx.Observed()
		tx.Put(state.VmKey(next.Uuid), next, rev)
		return nil
	})
	return err
}

func (l fakeLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *tasks.Task {
	if l.f.closing {
		return nil
	}
	t := l.f.table.Begin(op, refs, locks...)
	for _, id := range locks {
		l.f.held[id] = t.PB().Uuid
	}
	return t
}

// fakeHosts is the driver's PowerOff.
type fakeHosts struct {
	off []string // "vm@host"
	err error
}

func (h *fakeHosts) PowerOff(_ context.Context, host *acliv1.Host, vm *acliv1.Vm) error {
	h.off = append(h.off, vm.Name+"@"+host.Name)
	return h.err
}

type reconcileFixture struct {
	db    *state.DB
	m     *fakeManager
	hosts *fakeHosts
	log   bytes.Buffer
	r     *Reconciler
}

func newReconcile(t *testing.T, vms ...*acliv1.Vm) *reconcileFixture {
	f := &reconcileFixture{db: driftDB(t, vms...), hosts: &fakeHosts{}}
	f.m = newFakeManager(t, f.db)
	f.r = &Reconciler{DB: f.db, Settled: f.m.settled, Manager: f.m, Hosts: f.hosts, Log: slog.New(slog.NewTextHandler(&f.log, nil))}
	return f
}

func (f *reconcileFixture) vm(t *testing.T, name string) *acliv1.Vm {
	t.Helper()
	var v *acliv1.Vm
	f.db.View(func(tx *state.Tx) { v = tx.Vm("uuid-" + name) })
	return v
}

// rename commits a change of the VM's record (another writer's).
func (f *reconcileFixture) rename(t *testing.T, name, to string) {
	t.Helper()
	var cur *acliv1.Vm
	var rev int64
	f.db.View(func(tx *state.Tx) { cur, rev = tx.Vm("uuid-"+name), tx.Rev(state.VmKey("uuid-"+name)) })
	next := proto.Clone(cur).(*acliv1.Vm)
	next.Name = to
	if _, err := f.db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.VmKey(next.Uuid), next, rev)
		return nil
	}); err != nil {
		t.Error(err)
	}
}

func report(at time.Time, obs ...driver.VmObservation) driver.HostEvent {
	return driver.HostEvent{Kind: driver.VmStates, HostUUID: "uuid-h1", Time: at, Vms: obs}
}

func seen(vm string, p acliv1.PowerState, elsewhere ...string) driver.VmObservation {
	return driver.VmObservation{VmUUID: "uuid-" + vm, PowerState: p, RunningElsewhere: elsewhere}
}

// A report is recorded for the VMs no task holds and nothing changed since
// it was read; each change is published with the VM and its new host, and
// the VM settles at the report's time.
func TestReconcilerRecordsReports(t *testing.T) {
	on, off := acliv1.PowerState_kOn, acliv1.PowerState_kOff
	f := newReconcile(t, vmOn("stopped", "h1", on), vmOn("started", "", off), vmOn("busy", "h1", on), vmOn("stale", "h1", on))
	at := time.Unix(1000, 0)
	f.m.held["uuid-busy"] = "some-task"
	f.m.settled.Settle("uuid-stale", at.Add(time.Second)) // a task let go of it after the host was read
	ev := report(at, seen("stopped", off), seen("started", on), seen("busy", off), seen("stale", off))
	if err := f.r.Apply(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if v := f.vm(t, "stopped"); v.PowerState != off || v.HostUuid != "" {
		t.Errorf("stopped: %s on %q", v.PowerState, v.HostUuid)
	}
	if v := f.vm(t, "started"); v.PowerState != on || v.HostUuid != "uuid-h1" {
		t.Errorf("started: %s on %q", v.PowerState, v.HostUuid)
	}
	for _, n := range []string{"busy", "stale"} {
		if v := f.vm(t, n); v.PowerState != on || v.HostUuid != "uuid-h1" {
			t.Errorf("%s changed: %s on %q", n, v.PowerState, v.HostUuid)
		}
	}
	want := []string{
		"kVm:stopped: vm stopped was found off on host h1 (127.42.0.1) (powered off outside clusterd)",
		"kVm:started,kHost:h1: vm started was found on on host h1 (127.42.0.1) (started outside clusterd)",
	}
	if !slices.Equal(f.m.published, want) {
		t.Errorf("published\n%q\nwant\n%q", f.m.published, want)
	}
	settledAt := func(vm string) bool {
		return !f.m.settled.Stale(vm, at) && f.m.settled.Stale(vm, at.Add(-time.Nanosecond))
	}
	if f.m.records != 2 || !settledAt("uuid-stopped") || !settledAt("uuid-started") {
		t.Errorf("%d records; stopped settled at the report: %v, started: %v", f.m.records, settledAt("uuid-stopped"), settledAt("uuid-started"))
	}
	if strings.Count(f.log.String(), "vm state reconciled from its host") != 2 {
		t.Errorf("log: %s", f.log.String())
	}
	// The same report again changes nothing.
	if err := f.r.Apply(context.Background(), ev); err != nil || f.m.records != 2 {
		t.Errorf("a repeated report: %v, %d records", err, f.m.records)
	}
}

// Between the comparison (under the read lock) and the commit (under the
// lock) the VM may change: a commit, a task taking it, or a commit racing
// the report's own. Each leaves the record as it is and publishes nothing;
// only a conflict is not an error.
func TestReconcilerLeavesVmsChangedSinceTheReport(t *testing.T) {
	on, off := acliv1.PowerState_kOn, acliv1.PowerState_kOff
	tests := []struct {
		name    string
		race    func(f *reconcileFixture, t *testing.T)
		records int
		err     string
	}{
		{"committed", func(f *reconcileFixture, t *testing.T) {
			f.m.beforeLocked = func() { f.rename(t, "web", "web2") }
		}, 0, ""},
		{"taken by a task", func(f *reconcileFixture, t *testing.T) {
			f.m.beforeLocked = func() { f.m.held["uuid-web"] = "vm.on" }
		}, 0, ""},
		{"settled by a task", func(f *reconcileFixture, t *testing.T) {
			f.m.beforeLocked = func() { f.m.settled.Settle("uuid-web", time.Unix(2000, 0)) }
		}, 0, ""},
		{"conflict", func(f *reconcileFixture, t *testing.T) {
			f.m.beforeRecord = func() { f.rename(t, "web", "web2") }
		}, 1, ""},
		{"refused", func(f *reconcileFixture, t *testing.T) {
			f.m.recordErr = errors.New("refused by a rule")
		}, 1, "refused by a rule"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newReconcile(t, vmOn("web", "h1", on))
			tt.race(f, t)
			err := f.r.Apply(context.Background(), report(time.Unix(1000, 0), seen("web", off)))
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || err.Error() != tt.err) {
				t.Fatalf("err %v, want %q", err, tt.err)
			}
			if v := f.vm(t, "web"); v.PowerState != on {
				t.Errorf("recorded %s over a change since the report", v.PowerState)
			}
			if f.m.records != tt.records || len(f.m.published) != 0 {
				t.Errorf("%d records (want %d), published %q", f.m.records, tt.records, f.m.published)
			}
		})
	}
}

// A host running a copy of a VM that runs elsewhere: the copy is powered
// off by a power-off task holding the VM, naming the VM and the host; the
// record stays as it is.
func TestReconcilerFencesAStaleCopy(t *testing.T) {
	on := acliv1.PowerState_kOn
	f := newReconcile(t, vmOn("web", "h2", on))
	ev := report(time.Unix(1000, 0), seen("web", on, "uuid-h2"))
	if err := f.r.Apply(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.hosts.off, []string{"web@h1"}) {
		t.Fatalf("powered off %v, want the copy on h1", f.hosts.off)
	}
	tasks := f.m.table.Newest(10, func(*acliv1.Task) bool { return true })
	if len(tasks) != 1 || tasks[0].Operation != acliv1.TaskOperation_kVmPowerOff || len(tasks[0].Entities) != 2 ||
		tasks[0].Entities[0].Name != "web" || tasks[0].Entities[1].Name != "h1" {
		t.Fatalf("tasks %v", tasks)
	}
	wantProgress := "10% powering off the stale copy of vm web on host h1 (127.42.0.1); it runs on h2"
	wantResult := "vm web runs on h2; its stale copy on host h1 (127.42.0.1) (left when HA restarted it) was powered off"
	if !slices.Equal(f.m.progress, []string{wantProgress}) || !slices.Equal(f.m.results, []string{wantResult}) {
		t.Fatalf("progress %q, result %q", f.m.progress, f.m.results)
	}
	if v := f.vm(t, "web"); v.HostUuid != "uuid-h2" || v.PowerState != on || f.m.records != 0 || len(f.m.published) != 0 {
		t.Fatalf("the record changed: %s on %s", v.PowerState, v.HostUuid)
	}

	// A power-off that fails fails the task, naming both hosts.
	f.hosts.err = errors.New("domain not found")
	if err := f.r.Apply(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if got := f.m.results[len(f.m.results)-1]; got != "failed: vm web runs on h2 and also on host h1 (127.42.0.1); powering off the copy on h1 failed: domain not found" {
		t.Fatalf("result %q", got)
	}

	// No task once the manager is closing, nor when the record moved the
	// VM to the reporting host since, nor while a task holds the VM.
	n := len(f.hosts.off)
	f.m.closing = true
	f.r.Apply(context.Background(), ev)
	f.m.closing = false
	f.m.held["uuid-web"] = "vm.migrate"
	f.r.Apply(context.Background(), ev)
	delete(f.m.held, "uuid-web")
	f.m.beforeLocked = func() {
		var cur *acliv1.Vm
		var rev int64
		f.db.View(func(tx *state.Tx) { cur, rev = tx.Vm("uuid-web"), tx.Rev(state.VmKey("uuid-web")) })
		next := proto.Clone(cur).(*acliv1.Vm)
		next.HostUuid, next.HostName = "uuid-h1", "h1"
		if _, err := f.db.Update(context.Background(), func(tx *state.Tx) error { tx.Put(state.VmKey("uuid-web"), next, rev); return nil }); err != nil {
			t.Error(err)
		}
	}
	f.r.Apply(context.Background(), ev)
	if len(f.hosts.off) != n || len(f.m.table.Newest(10, func(*acliv1.Task) bool { return true })) != 2 {
		t.Fatalf("fenced again: %v", f.hosts.off)
	}
}
