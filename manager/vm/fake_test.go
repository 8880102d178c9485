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

// fake is the manager as manager/vm sees it: a state DB over bolt, a task
// table, a busy table, placement on a named or the first host, and a
// driver that records what it is asked. Launched work runs before Launch
// returns.
type fake struct {
	db    *state.DB
	svc   *vm.Service
	drv   *fakeDriver
	disks *fakeDisks

	mu       sync.Mutex
	tab      *tasks.Table
	busy     map[string]*tasks.Task
	arriving map[string]int
	// placeErr refuses every placement; targetErr every target re-check;
	// commitErr the next commit.
	placeErr, targetErr, commitErr error
	// onBegin, when set, runs as a quick task begins (before it holds
	// anything): another task's change landing meanwhile.
	onBegin func()
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

func (f *fake) Locked(fn func(l vm.Locked) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(fakeLocked{f})
}

// Launch runs the work at once; a failure fails the task.
func (f *fake) Launch(ctx context.Context, t *tasks.Task, w vm.Work) (*acliv1.Task, error) {
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
	return t.Replace(tasks.Succeeded(t.PB, out.Message)), nil
}

// fakeStarter begins quick tasks in the fake's table and busy locks, as
// the manager's do: a VM a quick task holds is busy for the Locked flows.
type fakeStarter struct{ f *fake }

type fakeQuick struct {
	f *fake
	t *tasks.Task
}

func (s fakeStarter) Begin(_ context.Context, kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) (tasks.Quick, error) {
	f := s.f
	if f.onBegin != nil {
		f.onBegin()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range locks {
		if o := f.busy[l]; o != nil {
			return nil, apierr.Busy(kind, refs[0].Name, o.PB.Uuid, o.PB.Operation.String())
		}
	}
	return &fakeQuick{f: f, t: fakeLocked{f}.Begin(op, refs, locks...)}, nil
}

func (q *fakeQuick) Hold(lock string) (string, bool) {
	q.f.mu.Lock()
	defer q.f.mu.Unlock()
	if o := q.f.busy[lock]; o != nil && o != q.t {
		return o.PB.Uuid, false
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
	return q.t.Replace(tasks.Succeeded(q.t.PB, msg)), nil
}

func (q *fakeQuick) Drop() {
	q.f.mu.Lock()
	defer q.f.mu.Unlock()
	fakeLocked{q.f}.Forget(q.t)
}

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

func (f *fake) end(t *tasks.Task) {
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

func (f *fake) Progress(t *tasks.Task, percent int32, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Update(func(pb *acliv1.Task) { pb.Percent, pb.ProgressMessage = percent, fmt.Sprintf(format, args...) })
}

func (f *fake) Record(ctx context.Context, next *acliv1.Vm, rev int64) error {
	return f.commit(vm.Outcome{Writes: []state.Write{{Key: state.VmKey(next.Uuid), Msg: next, Rev: rev}}})
}

func (f *fake) CheckTarget(string) error { return f.targetErr }

type fakeLocked struct{ f *fake }

func (f *fake) Read(fn func(r vm.Reader)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(fakeLocked{f})
}

func (l fakeLocked) Task(id string) *tasks.Task { return l.f.busy[id] }

func (l fakeLocked) Storage(v *acliv1.Vm, _ bool) *acliv1.Vm { return v }

func (l fakeLocked) Holder(id string) *tasks.Task { return l.f.busy[id] }

func (l fakeLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *tasks.Task {
	t := l.f.tab.Begin(op, refs, locks...)
	for _, id := range locks {
		l.f.busy[id] = t
	}
	return t
}

func (l fakeLocked) Forget(t *tasks.Task) {
	l.f.end(t)
	l.f.tab.Forget(t)
}

func (l fakeLocked) Place(v *acliv1.Vm, named string) (*acliv1.Host, error) {
	if l.f.placeErr != nil {
		return nil, l.f.placeErr
	}
	var h *acliv1.Host
	l.f.db.View(func(tx *state.Tx) {
		for _, x := range tx.Hosts() {
			if h == nil && (named == "" || x.Name == named) {
				h = x
			}
		}
	})
	if h == nil {
		return nil, apierr.NotFound("host", named, nil)
	}
	return h, nil
}

func (l fakeLocked) Arriving(host string) func() {
	l.f.arriving[host]++
	return func() { l.f.arriving[host]-- }
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
