package image_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/image"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/storage"
	"github.com/acli-dev/acli/manager/tasks"
)

const gib = int64(1) << 30

var bg = context.Background()

// fixture is the image feature over a real state.DB (bbolt in a temporary
// directory) with fakes of the manager's tasks and storage.
type fixture struct {
	db    *state.DB
	tasks *fakeTasks
	vols  *fakeVolumes
	svc   *image.Service
}

// newFixture: a 100 GiB default-container, host h1, VM web running on it
// with two vDisks (10 and 20 GiB), an empty CD-ROM and a volume group
// disk; VM db, off, with one 5 GiB vDisk.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	db := statetest.Open(t)
	db.SetCapacity(func(string) int64 { return 100 * gib })
	web := &acliv1.Vm{Uuid: "uuid-web", Name: "web", MemoryBytes: gib, NumVcpus: 1,
		PowerState: acliv1.PowerState_kOn, HostUuid: "uuid-h1", HostName: "h1",
		Disks: []*acliv1.Disk{
			{Uuid: "d-web-0", Bus: "scsi", Index: 0, SizeBytes: 10 * gib},
			{Uuid: "d-web-1", Bus: "scsi", Index: 1, SizeBytes: 20 * gib},
			{Uuid: "d-web-cd", Bus: "ide", Index: 0, Cdrom: true},
			{Uuid: "d-web-vg", Bus: "scsi", Index: 2, SizeBytes: gib, VolumeGroupUuid: "vg1"},
		}}
	dbvm := &acliv1.Vm{Uuid: "uuid-db", Name: "db", MemoryBytes: gib, PowerState: acliv1.PowerState_kOff,
		Disks: []*acliv1.Disk{{Uuid: "d-db-0", Bus: "scsi", SizeBytes: 5 * gib}}}
	if _, err := db.Update(bg, func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Name: "c", RedundancyFactor: 2}, 0)
		tx.Put(state.HostKey("uuid-h1"), &acliv1.Host{Uuid: "uuid-h1", Name: "h1", HypervisorIp: "127.49.0.1",
			MemoryBytes: 64 * gib, CpuCores: 16, Schedulable: true,
			NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp}, 0)
		tx.Put(state.VmKey(web.Uuid), web, 0)
		tx.Put(state.VmKey(dbvm.Uuid), dbvm, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, tasks: newFakeTasks(t, db), vols: &fakeVolumes{db: db, vols: map[string]int64{}}}
	for _, v := range []*acliv1.Vm{web, dbvm} {
		for _, d := range v.Disks {
			if state.HasData(d) {
				f.vols.vols[d.Uuid] = d.SizeBytes
			}
		}
	}
	f.svc = &image.Service{DB: db, Tasks: f.tasks, Quick: quickTasks{f.tasks}, Volumes: f.vols}
	return f
}

// fakeTasks keeps its own table of held entities and commits a task's
// writes through state.DB.Update, as the manager does.
type fakeTasks struct {
	t     testing.TB
	db    *state.DB
	table *tasks.Table

	mu         sync.Mutex
	changing   map[string]*tasks.Task
	reading    map[string][]*tasks.Task
	reads      map[*tasks.Task][]string
	stops      map[*tasks.Task]context.CancelCauseFunc
	progress   []string
	pastReturn int
	// beforeCommit, when set, runs just before a task's writes are
	// committed.
	beforeCommit func()
	// beforeWork, when set, runs before a launched task's work.
	beforeWork func()

	wg    sync.WaitGroup
	ended map[string]*acliv1.Task // launched tasks' final records
}

func newFakeTasks(t testing.TB, db *state.DB) *fakeTasks {
	return &fakeTasks{t: t, db: db, table: tasks.NewTable(100),
		changing: map[string]*tasks.Task{}, reading: map[string][]*tasks.Task{},
		reads: map[*tasks.Task][]string{}, stops: map[*tasks.Task]context.CancelCauseFunc{}, ended: map[string]*acliv1.Task{}}
}

type fakeHeld struct{ f *fakeTasks }

func (h fakeHeld) Changing(id string) *acliv1.Task {
	if t := h.f.changing[id]; t != nil {
		return t.PB()
	}
	return nil
}

func (h fakeHeld) Holding(id string) *acliv1.Task {
	if t := h.f.changing[id]; t != nil {
		return t.PB()
	}
	if rs := h.f.reading[id]; len(rs) > 0 {
		return rs[0].PB()
	}
	return nil
}

func (f *fakeTasks) Begin(ctx context.Context, plan func(image.Held) (image.Start, error)) (*tasks.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := plan(fakeHeld{f})
	if err != nil {
		return nil, err
	}
	for _, id := range s.Locks {
		if t := (fakeHeld{f}).Holding(id); t != nil {
			f.t.Errorf("%s starts holding %s, which task %s holds", s.Op, id, t.Uuid)
		}
	}
	for _, id := range s.Reads {
		if t := (fakeHeld{f}).Changing(id); t != nil {
			f.t.Errorf("%s starts reading %s, which task %s changes", s.Op, id, t.Uuid)
		}
	}
	t := f.table.Begin(s.Op, s.Refs, s.Locks...)
	t.SetCancellable(s.Cancellable)
	for _, id := range s.Locks {
		f.changing[id] = t
	}
	for _, id := range s.Reads {
		f.reading[id] = append(f.reading[id], t)
	}
	f.reads[t] = s.Reads
	return t, nil
}

// read marks id as read by a task of another feature (a clone copying
// from it) until the returned func is called.
func (f *fakeTasks) read(id string) (*acliv1.Task, func()) {
	t, err := f.Begin(bg, func(image.Held) (image.Start, error) {
		return image.Start{Op: acliv1.TaskOperation_kVmClone, Reads: []string{id}}, nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return t.PB(), func() { f.end(t) }
}

func (f *fakeTasks) end(t *tasks.Task) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range t.Locks {
		delete(f.changing, id)
	}
	for _, id := range f.reads[t] {
		f.reading[id] = slices.DeleteFunc(f.reading[id], func(r *tasks.Task) bool { return r == t })
	}
	delete(f.reads, t)
}

func (f *fakeTasks) finish(ctx context.Context, t *tasks.Task, w image.Work) (*acliv1.Task, error) {
	defer f.end(t)
	out, err := w(ctx, t)
	if err == nil {
		if f.beforeCommit != nil {
			f.beforeCommit()
		}
		_, err = f.db.Update(context.WithoutCancel(ctx), func(tx *state.Tx) error {
			for _, w := range out.Writes {
				if w.Msg == nil {
					tx.Delete(w.Key, w.Rev)
				} else {
					tx.Put(w.Key, w.Msg, w.Rev)
				}
			}
			return nil
		})
		if err != nil && out.Undo != nil {
			out.Undo()
		}
	}
	if err != nil {
		return tasks.Succeeded(t.PB(), ""), err
	}
	return tasks.Succeeded(t.PB(), out.Message), nil
}

// quickTasks begins quick tasks (tasks.Starter) over the same table.
type quickTasks struct{ f *fakeTasks }

type quickTask struct {
	f *fakeTasks
	t *tasks.Task
}

func (q quickTasks) Begin(ctx context.Context, kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) (tasks.Quick, error) {
	f := q.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range locks {
		if t := (fakeHeld{f}).Holding(id); t != nil {
			return nil, apierr.Busy(kind, refs[0].Name, t.Uuid, t.Operation.String())
		}
	}
	t := f.table.Begin(op, refs, locks...)
	for _, id := range locks {
		f.changing[id] = t
	}
	return &quickTask{f: f, t: t}, nil
}

func (q *quickTask) Hold(lock string) (string, bool) {
	f := q.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if o := f.changing[lock]; o != nil && o != q.t {
		return o.PB().Uuid, false
	}
	f.changing[lock] = q.t
	q.t.Locks = append(q.t.Locks, lock)
	return "", true
}

func (q *quickTask) Commit(ctx context.Context, ws []state.Write, msg string) (*acliv1.Task, error) {
	pb, err := q.f.finish(ctx, q.t, func(context.Context, *tasks.Task) (image.Outcome, error) {
		return image.Outcome{Writes: ws, Message: msg}, nil
	})
	if err != nil {
		return nil, err
	}
	return pb, nil
}

func (q *quickTask) Drop() { q.f.end(q.t) }

func (f *fakeTasks) Launch(ctx context.Context, t *tasks.Task, w image.Work) (*acliv1.Task, error) {
	ctx, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	if t.PB().Cancellable {
		f.mu.Lock()
		f.stops[t] = stop
		f.mu.Unlock()
	}
	f.wg.Add(1)
	go func() {
		defer stop(nil)
		defer f.wg.Done()
		if f.beforeWork != nil {
			f.beforeWork()
		}
		pb, err := f.finish(ctx, t, w)
		if err != nil {
			pb.Status, pb.Error = acliv1.TaskStatus_kFailed, err.Error()
		}
		f.mu.Lock()
		f.ended[pb.Uuid] = pb
		f.mu.Unlock()
	}()
	return t.PB(), nil
}

// wait is the final record of a launched task.
func (f *fakeTasks) wait(t *acliv1.Task) *acliv1.Task {
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ended[t.Uuid]
}

func (f *fakeTasks) Progress(t *tasks.Task, percent int32, line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.progress = append(f.progress, line)
}

func (f *fakeTasks) PastReturn(t *tasks.Task) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pastReturn++
	delete(f.stops, t)
}

// cancellable is the number of running tasks that can still be cancelled.
func (f *fakeTasks) cancellable() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.changing {
		if f.stops[t] != nil {
			n++
		}
	}
	return n
}

// cancel stops a running task as task.cancel does (false: it cannot be).
func (f *fakeTasks) cancel(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.changing {
		if stop := f.stops[t]; t.PB().Uuid == id && stop != nil {
			stop(errors.New("cancelled"))
			return true
		}
	}
	return false
}

// fakeVolumes keeps volumes as sizes and checks that none is removed
// while a committed record still names it.
type fakeVolumes struct {
	db *state.DB

	mu   sync.Mutex
	vols map[string]int64
	// importGate, when set, holds imports until it is closed.
	importGate chan struct{}
	imported   driver.Imported
	importErr  error
	copyErr    error
	copies     [][]storage.Copy
	removed    []string
	// early are volumes removed while a record still named them.
	early []string
}

func (v *fakeVolumes) Container(name string) (string, error) {
	if name == "" || name == state.DefaultContainer {
		return state.DefaultContainer, nil
	}
	return "", errors.New("container " + name + " not found")
}

func (v *fakeVolumes) Import(ctx context.Context, container, id, url, sha256 string, progress func(done, total int64)) (driver.Imported, error) {
	total := v.imported.Size
	progress(0, total)
	if v.importGate != nil {
		select {
		case <-v.importGate:
		case <-ctx.Done():
			return driver.Imported{}, ctx.Err()
		}
	}
	if v.importErr != nil {
		return driver.Imported{}, v.importErr
	}
	progress(total/2, total)
	progress(total, total)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.vols[id] = total
	return v.imported, nil
}

func (v *fakeVolumes) Copy(ctx context.Context, copies []storage.Copy) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.copies = append(v.copies, copies)
	if v.copyErr != nil {
		return v.copyErr
	}
	for _, c := range copies {
		if _, ok := v.vols[c.Src.Vdisk]; !ok {
			return errors.New("no volume " + c.Src.Vdisk)
		}
		v.vols[c.Dst] = c.Size
	}
	return nil
}

func (v *fakeVolumes) Fits(container string, add int64, what string) error {
	capacity, _ := v.db.Capacity(container)
	if used := v.db.ContainerUse(container).Bytes; used+add > capacity {
		return apierr.Precondition(state.RuleCapacity, "container:"+container, "%s (%s) does not fit container %s: %s of %s used",
			what, scheduler.Bytes(add), container, scheduler.Bytes(used), scheduler.Bytes(capacity))
	}
	return nil
}

func (v *fakeVolumes) Remove(ctx context.Context, disks []*acliv1.Disk) {
	named := map[string]bool{}
	v.db.View(func(tx *state.Tx) {
		for _, im := range tx.Images() {
			named[im.Uuid] = true
		}
		for _, sn := range tx.Snapshots() {
			for _, d := range sn.Vm.GetDisks() {
				named[d.Uuid] = true
			}
		}
		for _, vm := range tx.Vms() {
			for _, d := range vm.Disks {
				named[d.Uuid] = true
			}
		}
	})
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, d := range disks {
		if !state.HasData(d) {
			continue
		}
		if named[d.Uuid] {
			v.early = append(v.early, d.Uuid)
		}
		delete(v.vols, d.Uuid)
		v.removed = append(v.removed, d.Uuid)
	}
}

func (v *fakeVolumes) has(id string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.vols[id]
	return ok
}
