package vm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/tasks"
	"github.com/acli-dev/acli/manager/vm"
)

const gib = int64(1) << 30

var bg = context.Background()

func host(name, ip string) *acliv1.Host {
	return &acliv1.Host{
		Uuid: "uuid-" + name, Name: name, HypervisorIp: ip, MemoryBytes: 8 * gib, CpuCores: 16, Schedulable: true,
		NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp,
	}
}

func record(name, on string, mem int64) *acliv1.Vm {
	v := &acliv1.Vm{Uuid: "uuid-" + name, Name: name, NumVcpus: 2, NumCoresPerVcpu: 1, NumThreadsPerCore: 1,
		MemoryBytes: mem, PowerState: acliv1.PowerState_kOff}
	if on != "" {
		v.PowerState, v.HostUuid, v.HostName = acliv1.PowerState_kOn, "uuid-"+on, on
	}
	return v
}

// fake is the manager as manager/vm sees it: a state DB over bolt (its
// busy table too), a task table, placement on a named or the first host,
// and a driver that records what it is asked. A task takes its entities in
// its start commit, as the manager's do; launched work runs before Launch
// returns.
type fake struct {
	db    *state.DB
	svc   *vm.Service
	drv   *fakeDriver
	disks *fakeDisks

	mu       sync.Mutex
	tab      *tasks.Table
	busy     map[string]*tasks.Task // what the fake's tasks hold in db
	arriving map[string]int
	// placeErr refuses every placement; targetErr every target re-check;
	// commitErr the next commit.
	placeErr, targetErr, commitErr error
	// onBegin, when set, runs as a task begins (before it is registered):
	// another task's change landing after the request's read. onStart runs
	// just before a task's start commit.
	onBegin, onStart func()
}

// newFake commits a 2-host RF2 cluster (8 GiB each) with VM a (4 GiB) on
// h1 and b (2 GiB) off.
func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{db: statetest.Open(t), drv: &fakeDriver{}, disks: &fakeDisks{free: 100 * gib}, tab: tasks.NewTable(100), busy: map[string]*tasks.Task{}, arriving: map[string]int{}}
	_, err := f.db.Update(bg, func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Name: "c", RedundancyFactor: 2}, 0)
		tx.Put(state.HostKey("uuid-h1"), host("h1", "127.48.0.1"), 0)
		tx.Put(state.HostKey("uuid-h2"), host("h2", "127.48.0.2"), 0)
		tx.Put(state.VmKey("uuid-a"), record("a", "h1", 4*gib), 0)
		tx.Put(state.VmKey("uuid-b"), record("b", "", 2*gib), 0)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = vm.New(f, fakeStarter{f}, f.db, f.drv, f.disks)
	return f
}

// vm is the committed record of a VM by name (nil if none).
func (f *fake) vm(name string) *acliv1.Vm {
	var out *acliv1.Vm
	f.db.View(func(tx *state.Tx) {
		for _, v := range tx.Vms() {
			if v.Name == name {
				out = v
			}
		}
	})
	return out
}

// running are the tasks not ended.
func (f *fake) running() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tab.Newest(1<<20, func(pb *acliv1.Task) bool { return !tasks.Finished(pb.Status) }))
}

// take begins and starts a task of op that holds ids: another task at
// work.
func (f *fake) take(op acliv1.TaskOperation, ids ...string) *tasks.Task {
	t, err := f.Begin(bg, "vm", op, []*acliv1.EntityRef{{Name: "other"}}, nil, ids...)
	if err == nil {
		err = f.start(t, "vm")
	}
	if err != nil {
		panic(err)
	}
	return t
}

// Begin registers a task, refusing it at once when another task holds one
// of locks.
func (f *fake) Begin(_ context.Context, kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, seen state.Seen, locks ...string) (*tasks.Task, error) {
	if f.onBegin != nil {
		f.onBegin()
	}
	return f.begin(kind, op, refs, seen, locks)
}

func (f *fake) begin(kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, seen state.Seen, locks []string) (*tasks.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range locks {
		if o := f.busy[l]; o != nil {
			return nil, apierr.Busy(kind, refs[0].Name, o.PB().Uuid, o.PB().Operation.String())
		}
	}
	t := f.tab.Begin(op, refs, locks...)
	t.Seen = seen
	return t, nil
}

// start is a task's start commit: it takes the task's entities if the
// records its request read are unchanged, else answers as the manager
// does (busy, or changed) and forgets the task.
func (f *fake) start(t *tasks.Task, kind string) error {
	if f.onStart != nil {
		f.onStart()
	}
	_, err := f.db.Update(bg, func(tx *state.Tx) error {
		if err := tx.Unchanged(t.Seen); err != nil {
			return err
		}
		tx.Take(t.PB().Uuid, t.Locks...)
		return nil
	})
	if err == nil {
		f.mu.Lock()
		for _, id := range t.Locks {
			f.busy[id] = t
		}
		f.mu.Unlock()
		return nil
	}
	f.Forget(t)
	id, holder, busy := state.Busy(err)
	changed := false
	if !busy {
		if id, changed = state.ChangedSince(err); !changed {
			return err
		}
	}
	ref := t.PB().Entities[0]
	for _, e := range t.PB().Entities {
		if e.Uuid == id {
			ref = e
		}
	}
	if kind == "" || ref != t.PB().Entities[0] {
		kind = tasks.Noun(ref.Kind)
	}
	if changed {
		return apierr.Changed(kind, ref.Name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return apierr.Busy(kind, ref.Name, holder, f.tab.Get(holder).PB().Operation.String())
}

func (f *fake) Forget(t *tasks.Task) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.end(t)
	f.tab.Forget(t)
}

// Launch starts the task and runs the work at once; a failure fails the
// task.
func (f *fake) Launch(ctx context.Context, t *tasks.Task, w vm.Work) (*acliv1.Task, error) {
	if err := f.start(t, ""); err != nil {
		return nil, err
	}
	out, err := w(ctx, t)
	if err == nil {
		err = f.commit(out)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.end(t)
	if err != nil {
		return t.Update(func(pb *acliv1.Task) { tasks.Fail(pb, err, false) }), nil
	}
	return t.Replace(tasks.Succeeded(t.PB(), out.Message)), nil
}

// fakeStarter begins quick tasks in the fake's table and the DB's busy
// table, as the manager's do.
type fakeStarter struct{ f *fake }

type fakeQuick struct {
	f *fake
	t *tasks.Task
}

// Its task starts on the records as they are when it is registered.
func (s fakeStarter) Begin(_ context.Context, kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) (tasks.Quick, error) {
	if s.f.onBegin != nil {
		s.f.onBegin()
	}
	var seen state.Seen
	s.f.db.View(func(tx *state.Tx) { seen = tx.Seen(locks...) })
	t, err := s.f.begin(kind, op, refs, seen, locks)
	if err == nil {
		err = s.f.start(t, kind)
	}
	if err != nil {
		return nil, err
	}
	return &fakeQuick{f: s.f, t: t}, nil
}

func (q *fakeQuick) Hold(lock string) (string, bool) {
	q.f.mu.Lock()
	defer q.f.mu.Unlock()
	_, err := q.f.db.Update(context.Background(), func(tx *state.Tx) error { tx.Take(q.t.PB().Uuid, lock); return nil })
	if _, o, busy := state.Busy(err); busy {
		return o, false
	}
	q.f.busy[lock] = q.t
	q.t.Locks = append(q.t.Locks, lock)
	return "", true
}

// Commit commits ws and ends the task; a refused commit forgets it.
func (q *fakeQuick) Commit(_ context.Context, ws []state.Write, msg string) (*acliv1.Task, error) {
	if err := q.f.commit(vm.Outcome{Writes: ws}); err != nil {
		q.Drop()
		return nil, err
	}
	q.f.mu.Lock()
	defer q.f.mu.Unlock()
	q.f.end(q.t)
	return q.t.Replace(tasks.Succeeded(q.t.PB(), msg)), nil
}

func (q *fakeQuick) Drop() { q.f.Forget(q.t) }

func (f *fake) commit(out vm.Outcome) error {
	f.mu.Lock()
	err := f.commitErr
	f.commitErr = nil
	f.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = f.db.Update(bg, func(tx *state.Tx) error {
		for _, w := range out.Writes {
			if w.Msg == nil {
				tx.Delete(w.Key, w.Rev)
			} else {
				tx.Put(w.Key, w.Msg, w.Rev)
			}
		}
		return nil
	})
	return err
}

// end lets go of what t holds and runs its release (under f.mu).
func (f *fake) end(t *tasks.Task) {
	f.db.LetGoNow(t.PB().Uuid, t.Locks...)
	for _, id := range t.Locks {
		if f.busy[id] == t {
			delete(f.busy, id)
		}
	}
	if t.Release != nil {
		t.Release()
		t.Release = nil
	}
}

// letGo lets go of a hold take took, the task still running.
func (f *fake) letGo(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.db.LetGoNow(f.busy[id].PB().Uuid, id)
	delete(f.busy, id)
}

func (f *fake) Progress(t *tasks.Task, percent int32, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Update(func(pb *acliv1.Task) { pb.Percent, pb.ProgressMessage = percent, fmt.Sprintf(format, args...) })
}

func (f *fake) Record(ctx context.Context, next *acliv1.Vm, rev int64) error {
	return f.commit(vm.Outcome{Writes: []state.Write{{Key: state.VmKey(next.Uuid), Msg: next, Rev: rev}}})
}

func (f *fake) CheckTarget(string) error { return f.targetErr }

func (f *fake) Storage(v *acliv1.Vm, _ bool) *acliv1.Vm { return v }

func (f *fake) Reserve(fn func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn()
}

// Place takes the named host or the first, holds v's memory there and
// counts it arriving until t ends, and names the host in t.
func (f *fake) Place(t *tasks.Task, v *acliv1.Vm, named string) (*acliv1.Host, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.placeErr != nil {
		return nil, f.placeErr
	}
	var h *acliv1.Host
	f.db.View(func(tx *state.Tx) {
		for _, x := range tx.Hosts() {
			if h == nil && (named == "" || x.Name == named) {
				h = x
			}
		}
	})
	if h == nil {
		return nil, apierr.NotFound("host", named, nil)
	}
	id := f.db.Hold(v, h.Uuid)
	f.arriving[h.Uuid]++
	t.Release = func() {
		f.db.Depart(id)
		f.arriving[h.Uuid]--
	}
	pb := proto.Clone(t.PB()).(*acliv1.Task)
	pb.Entities = append(pb.Entities, &acliv1.EntityRef{Kind: acliv1.EntityKind_kHost, Uuid: h.Uuid, Name: h.Name})
	t.Replace(pb)
	return h, nil
}

// fakeDriver records the calls it gets ("PowerOn a h1") and fails those
// named in fail.
type fakeDriver struct {
	driver.Driver
	mu    sync.Mutex
	calls []string
	fail  map[string]error
	// onCall, when set, runs on each call (without the driver's lock).
	onCall func(call string)
}

func (d *fakeDriver) do(op string, h *acliv1.Host, v *acliv1.Vm) error {
	call := op + " " + v.Name
	if h != nil {
		call += " " + h.Name
	}
	if d.onCall != nil {
		d.onCall(call)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, call)
	return d.fail[op]
}

func (d *fakeDriver) called() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

func (d *fakeDriver) PowerOn(_ context.Context, h *acliv1.Host, v *acliv1.Vm) error {
	return d.do("PowerOn", h, v)
}
func (d *fakeDriver) PowerOff(_ context.Context, h *acliv1.Host, v *acliv1.Vm) error {
	return d.do("PowerOff", h, v)
}
func (d *fakeDriver) Shutdown(_ context.Context, h *acliv1.Host, v *acliv1.Vm) error {
	return d.do("Shutdown", h, v)
}
func (d *fakeDriver) Reboot(_ context.Context, h *acliv1.Host, v *acliv1.Vm) error {
	return d.do("Reboot", h, v)
}
func (d *fakeDriver) Reset(_ context.Context, h *acliv1.Host, v *acliv1.Vm) error {
	return d.do("Reset", h, v)
}
func (d *fakeDriver) Undefine(_ context.Context, h *acliv1.Host, v *acliv1.Vm) error {
	return d.do("Undefine", h, v)
}

// wantErr checks err's code and message; a message ending in "..." is a
// prefix.
func wantErr(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	prefix, cut := strings.CutSuffix(msg, "...")
	if err == nil || st.Code() != code || (st.Message() != msg && !(cut && strings.HasPrefix(st.Message(), prefix))) {
		t.Fatalf("got %v, want %s %q", err, code, msg)
	}
}

var errBoom = errors.New("boom")

// addPaused records VM name paused on host (which need not exist).
func (f *fake) addPaused(t *testing.T, name, on string) {
	t.Helper()
	v := record(name, on, gib)
	v.PowerState = acliv1.PowerState_kPaused
	if _, err := f.db.Update(bg, func(tx *state.Tx) error {
		tx.Observed() // as a host would report it
		tx.Put(state.VmKey(v.Uuid), v, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// grow sets a VM's memory without a request.
func (f *fake) grow(t *testing.T, name string, mem int64) {
	t.Helper()
	v := proto.Clone(f.vm(name)).(*acliv1.Vm)
	v.MemoryBytes = mem
	if _, err := f.db.Update(bg, func(tx *state.Tx) error {
		tx.Put(state.VmKey(v.Uuid), v, state.AnyRev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
