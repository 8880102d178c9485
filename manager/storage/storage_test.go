package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/storage"
	"github.com/acli-dev/acli/manager/tasks/taskstest"
)

const gib = int64(1) << 30

var bg = context.Background()

const initiator = "iqn.1991-05.com.example:client1"

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeVolumes records copies and removals; every vDisk is one of VM
// web's. onCopy, when set, runs as a copy is made.
type fakeVolumes struct {
	mu      sync.Mutex
	copied  []string
	removed []string
	fail    error
	onCopy  func()
}

func (f *fakeVolumes) Source(field, id string) (storage.Source, error) {
	return storage.Source{Container: state.DefaultContainer, Vdisk: id, Size: 2 * gib, What: "vDisk " + id,
		Ref: &acliv1.EntityRef{Kind: acliv1.EntityKind_kVm, Uuid: "uuid-web", Name: "web"}, Lock: "uuid-web"}, nil
}

func (f *fakeVolumes) Copy(ctx context.Context, copies []storage.Copy) error {
	if f.onCopy != nil {
		f.onCopy()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	for _, c := range copies {
		f.copied = append(f.copied, c.Src.Vdisk+"->"+c.Dst)
	}
	return nil
}

func (f *fakeVolumes) Remove(ctx context.Context, disks []*acliv1.Disk) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range disks {
		f.removed = append(f.removed, d.Uuid)
	}
}

type fixture struct {
	db    *state.DB
	clock *clock
	svc   *storage.Service
	tasks *taskstest.Starter
	vols  *fakeVolumes
	mu    sync.Mutex
	evs   []string
}

func (f *fixture) events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.evs)
}

func host(n int) *acliv1.Host {
	return &acliv1.Host{
		Uuid: fmt.Sprintf("uuid-h%d", n), Name: fmt.Sprintf("h%d", n), HypervisorIp: fmt.Sprintf("127.45.0.%d", 20+n),
		CvmIp: fmt.Sprintf("127.45.0.%d", 30+n), MemoryBytes: 64 * gib, CpuCores: 16, Schedulable: true,
		NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp,
	}
}

// newFixture is a 3-host cluster (hosts listed out of IP order in the
// store) with VM web on h1, its containers bounded at capacity.
func newFixture(t *testing.T, cfg storage.IscsiConfig, capacity int64) *fixture {
	t.Helper()
	db := statetest.Open(t)
	db.SetCapacity(func(string) int64 { return capacity })
	web := &acliv1.Vm{Uuid: "uuid-web", Name: "web", MemoryBytes: gib, NumVcpus: 1, PowerState: acliv1.PowerState_kOn, HostUuid: "uuid-h1", HostName: "h1"}
	if _, err := db.Update(bg, func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Name: "c", RedundancyFactor: 2, IscsiDataServicesIp: "127.45.0.10"}, 0)
		for _, n := range []int{3, 1, 2} {
			tx.Put(state.HostKey(host(n).Uuid), host(n), 0)
		}
		tx.Put(state.VmKey(web.Uuid), web, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, clock: &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, vols: &fakeVolumes{}}
	f.tasks = taskstest.New(db)
	s := storage.NewSessions(storage.Deps{DB: db, Now: f.clock.Now, Publish: func(typ, sev, task string, refs []*acliv1.EntityRef, msg string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.evs = append(f.evs, sev+": "+msg)
	}}, cfg)
	f.svc = &storage.Service{Sessions: s, Tasks: f.tasks, Volumes: f.vols}
	return f
}

func ok(t *testing.T) func(*acliv1.Task, error) *acliv1.Task {
	return func(task *acliv1.Task, err error) *acliv1.Task {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
}

// makeVg creates a VG with n 1 GiB vDisks attached to the initiator.
func (f *fixture) makeVg(t *testing.T, name string, n int) {
	t.Helper()
	ok(t)(f.svc.CreateVolumeGroup(bg, &acliv1.CreateVolumeGroupRequest{Name: name}))
	for range n {
		ok(t)(f.svc.CreateVgDisk(bg, &acliv1.CreateVgDiskRequest{VolumeGroup: name, SizeBytes: gib}))
	}
	ok(t)(f.svc.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: name, InitiatorName: initiator}))
}

func (f *fixture) sessions(t *testing.T, vg string) []*acliv1.IscsiSession {
	t.Helper()
	r, err := f.svc.ListSessions(bg, &acliv1.ListSessionsRequest{VolumeGroup: vg})
	if err != nil {
		t.Fatal(err)
	}
	return r.Sessions
}

func (f *fixture) committed(t *testing.T, name string) []*acliv1.IscsiSession {
	t.Helper()
	var out []*acliv1.IscsiSession
	f.db.View(func(tx *state.Tx) {
		vg, err := storage.Find(tx, "volume_group", name)
		if err != nil {
			t.Fatal(err)
		}
		out = vg.Sessions
	})
	return out
}

// setCvm commits a CVM state change and tells the controller, as the
// manager's host events do.
func (f *fixture) setCvm(t *testing.T, n int, st acliv1.CvmState, tell bool) {
	t.Helper()
	var prev, next *acliv1.Host
	if _, err := f.db.Update(bg, func(tx *state.Tx) error {
		prev = tx.Host(host(n).Uuid)
		next = proto.Clone(prev).(*acliv1.Host)
		next.CvmState = st
		tx.Put(state.HostKey(next.Uuid), next, state.AnyRev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if tell {
		f.svc.CvmChanged(bg, prev, next)
	}
}

func servedBy(ss []*acliv1.IscsiSession) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%d@%s/%s", s.DiskIndex, s.CvmIp, s.State)
	}
	return out
}

// TestSessionsSpreadAndFailOver: one session per CVM; a CVM that goes
// down has its session moved to a healthy CVM at once, and back when it
// returns; the invariant holds throughout.
func TestSessionsSpreadAndFailOver(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{}, 1<<50)
	f.makeVg(t, "data", 3)
	want := []string{"0@127.45.0.31/kSessionActive", "1@127.45.0.32/kSessionActive", "2@127.45.0.33/kSessionActive"}
	if got := servedBy(f.committed(t, "data")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sessions %v, want %v", got, want)
	}
	f.setCvm(t, 2, acliv1.CvmState_kCvmDown, true)
	for _, s := range f.committed(t, "data") {
		if s.CvmIp == "127.45.0.32" || s.State != acliv1.IscsiSessionState_kSessionActive {
			t.Fatalf("session on the down cvm after failover: %v", servedBy(f.committed(t, "data")))
		}
	}
	for _, committed := range []bool{true, false} {
		if err := f.svc.Check(committed); err != nil {
			t.Fatal(err)
		}
	}
	if evs := f.events(); !slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, "warning: ") && strings.Contains(e, "127.45.0.32") }) {
		t.Fatalf("no failover event: %q", evs)
	}
	f.setCvm(t, 2, acliv1.CvmState_kCvmUp, true)
	if got := servedBy(f.committed(t, "data")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after failback %v, want %v", got, want)
	}
}

// TestReadersSeeTheFailoverBeforeItCommits: between a CVM going down and
// the failover being committed, reads show the plan, not the down CVM.
func TestReadersSeeTheFailoverBeforeItCommits(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{}, 1<<50)
	f.makeVg(t, "data", 3)
	f.setCvm(t, 3, acliv1.CvmState_kCvmDown, false)
	for _, s := range f.sessions(t, "data") {
		if s.CvmIp == "127.45.0.33" {
			t.Fatalf("a reader sees a session on the down cvm: %v", servedBy(f.sessions(t, "data")))
		}
	}
	if err := f.svc.Check(false); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Check(true); err == nil {
		t.Fatal("the committed sessions pass the check before the failover is committed")
	}
}

// TestSessionSinceIsWhatReadersWereShown: a session that moved is shown
// with a start time before the move is committed; the commit, later,
// records that same time, so the time does not change under a client (nor
// across a restart, which reads the committed one).
func TestSessionSinceIsWhatReadersWereShown(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{}, 1<<50)
	f.makeVg(t, "data", 3)
	f.setCvm(t, 2, acliv1.CvmState_kCvmDown, false)
	f.clock.add(time.Second)
	shown := f.sessions(t, "data")
	f.clock.add(time.Millisecond)
	if err := f.svc.Reconcile(bg); err != nil {
		t.Fatal(err)
	}
	stored := f.committed(t, "data")
	for i, s := range stored {
		if !s.Since.AsTime().Equal(shown[i].Since.AsTime()) || s.CvmIp != shown[i].CvmIp {
			t.Fatalf("session %d committed %v since %v; readers were shown %v since %v", i, s.CvmIp, s.Since.AsTime(), shown[i].CvmIp, shown[i].Since.AsTime())
		}
	}
	// A later change is stamped anew.
	f.setCvm(t, 2, acliv1.CvmState_kCvmUp, false)
	f.clock.add(time.Second)
	if err := f.svc.Reconcile(bg); err != nil {
		t.Fatal(err)
	}
	back := f.committed(t, "data")[1]
	if back.CvmIp != "127.45.0.32" || !back.Since.AsTime().Equal(f.clock.Now()) {
		t.Fatalf("after failback %v since %v, want 127.45.0.32 since %v", back.CvmIp, back.Since.AsTime(), f.clock.Now())
	}
}

// TestNoFailbackLeavesSessions: with NoFailback a recovered CVM gets no
// session back.
func TestNoFailbackLeavesSessions(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{NoFailback: true}, 1<<50)
	f.makeVg(t, "data", 3)
	f.setCvm(t, 1, acliv1.CvmState_kCvmDown, true)
	failed := servedBy(f.committed(t, "data"))
	f.setCvm(t, 1, acliv1.CvmState_kCvmUp, true)
	if got := servedBy(f.committed(t, "data")); fmt.Sprint(got) != fmt.Sprint(failed) {
		t.Fatalf("sessions moved back: %v, were %v", got, failed)
	}
}

// TestVmSessionsFollowTheVm: a VG attached to a running VM gets sessions
// for it on its local CVM; the VM's view lists the VG's disks after its
// own with their path.
func TestVmSessionsFollowTheVm(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{}, 1<<50)
	ok(t)(f.svc.CreateVolumeGroup(bg, &acliv1.CreateVolumeGroupRequest{Name: "db"}))
	ok(t)(f.svc.CreateVgDisk(bg, &acliv1.CreateVgDiskRequest{VolumeGroup: "db", SizeBytes: gib}))
	task := ok(t)(f.svc.AttachToVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "db", Vm: "web"}))
	if want := "volume group db attached to vm web; 1 sessions on 127.45.0.31"; task.Messages[0] != want {
		t.Fatalf("task message %q, want %q", task.Messages[0], want)
	}
	var web *acliv1.Vm
	f.db.View(func(tx *state.Tx) { web = tx.Vm("uuid-web") })
	out := f.svc.VmOut(web)
	if len(out.Disks) != 1 || out.Disks[0].Path != "local" || out.Disks[0].ServedByCvmIp != "127.45.0.31" || len(out.VolumeGroupUuids) != 1 {
		t.Fatalf("vm view %v", out)
	}
	if _, err := f.svc.AttachToVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "db", Vm: "web"}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second attach: %v", err)
	}
	if _, err := f.svc.DeleteVolumeGroup(bg, &acliv1.DeleteVolumeGroupRequest{VolumeGroup: "db"}); err == nil || !strings.Contains(err.Error(), "attached to vm web") {
		t.Fatalf("deleting an attached VG: %v", err)
	}
	ok(t)(f.svc.DetachFromVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "db", Vm: "web"}))
	ok(t)(f.svc.DeleteVolumeGroup(bg, &acliv1.DeleteVolumeGroupRequest{VolumeGroup: "db"}))
	if len(f.vols.removed) != 1 {
		t.Fatalf("volumes removed %v, want the VG's one vDisk", f.vols.removed)
	}
}

// TestCloneCapacity: a clone that does not fit its container is refused
// before anything is copied; one that fits copies every vDisk.
func TestCloneCapacity(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{}, 5*gib)
	f.makeVg(t, "data", 3) // 3 GiB of 5
	_, err := f.svc.CloneVolumeGroup(bg, &acliv1.CloneVolumeGroupRequest{Name: "copy", CloneFromVg: "data"})
	if err == nil || !strings.Contains(err.Error(), "clone of volume group data (3 GiB) does not fit container default-container: 3 GiB of 5 GiB used, 2 GiB free") {
		t.Fatalf("clone over capacity: %v", err)
	}
	if len(f.vols.copied) != 0 {
		t.Fatalf("copied %v before refusing", f.vols.copied)
	}
	ok(t)(f.svc.CreateVgDisk(bg, &acliv1.CreateVgDiskRequest{VolumeGroup: "data", CloneFromVmdisk: uuid.NewString()})) // 2 GiB more: full
	if _, err := f.svc.CreateVgDisk(bg, &acliv1.CreateVgDiskRequest{VolumeGroup: "data", SizeBytes: 1}); !errors.As(err, new(*state.ViolationError)) {
		t.Fatalf("a vDisk into a full container: %v, want the capacity rule at commit", err)
	}
}

// TestRefusedCloneRemovesTheCopy: a clone into a busy VG, or of a vDisk
// whose VM a task changes, copies nothing; while it copies, the task holds
// the VG and reads the VM (another read is fine, a change is refused); a
// clone whose commit is refused leaves no volume behind.
func TestRefusedCloneRemovesTheCopy(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{}, 1<<50)
	f.makeVg(t, "data", 2)
	var id string
	f.db.View(func(tx *state.Tx) { v, _ := storage.Find(tx, "volume_group", "data"); id = v.Uuid })
	clone := func() error {
		_, err := f.svc.CreateVgDisk(bg, &acliv1.CreateVgDiskRequest{VolumeGroup: "data", CloneFromVmdisk: uuid.NewString()})
		return err
	}
	for _, lock := range []string{id, "uuid-web"} {
		other, err := f.tasks.Begin(bg, "volume group", acliv1.TaskOperation_kVgUpdate, []*acliv1.EntityRef{{Name: "data", Uuid: id}, {Name: "web", Uuid: "uuid-web", Kind: acliv1.EntityKind_kVm}}, lock)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{id: "volume group data is busy with task task-", "uuid-web": "vm web is busy with task task-"}[lock]
		if err := clone(); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("clone with %s held: %v, want %q", lock, err, want)
		}
		other.Drop()
	}
	if len(f.vols.copied) != 0 {
		t.Fatalf("copied %v for refused clones", f.vols.copied)
	}

	var during []string
	f.vols.onCopy = func() {
		f.vols.onCopy = nil
		during = append(during, slices.Sorted(slices.Values(f.tasks.Held()))...)
		if _, err := f.tasks.Begin(bg, "vm", acliv1.TaskOperation_kVmUpdate, []*acliv1.EntityRef{{Name: "web"}}, "uuid-web"); err == nil {
			t.Error("a change of a VM whose vDisk is copied was let begin")
		}
		if q, err := f.tasks.Begin(bg, "vm", acliv1.TaskOperation_kVmClone, []*acliv1.EntityRef{{Name: "web"}}, state.Read("uuid-web")); err != nil {
			t.Errorf("a second reader: %v", err)
		} else {
			q.Drop()
		}
	}
	ok(t)(f.svc.CreateVgDisk(bg, &acliv1.CreateVgDiskRequest{VolumeGroup: "data", CloneFromVmdisk: uuid.NewString()}))
	if want := slices.Sorted(slices.Values([]string{state.Read("uuid-web"), id})); !slices.Equal(during, want) {
		t.Fatalf("held while copying %v, want %v", during, want)
	}
	if h := f.tasks.Held(); len(h) != 0 {
		t.Fatalf("held after the clone: %v", h)
	}

	f.tasks.FailNext = errors.New("boom")
	if err := clone(); err == nil {
		t.Fatal("the refused commit succeeded")
	}
	if len(f.vols.copied) != 2 || len(f.vols.removed) != 1 || !strings.HasSuffix(f.vols.copied[1], f.vols.removed[0]) {
		t.Fatalf("copied %v, removed %v", f.vols.copied, f.vols.removed)
	}
}

// TestAttachToABusyVm: a task changing the VM refuses an attachment,
// naming the VM, and leaves nothing held; each change is one task that
// ends with its message.
func TestAttachToABusyVm(t *testing.T) {
	f := newFixture(t, storage.IscsiConfig{}, 1<<50)
	ok(t)(f.svc.CreateVolumeGroup(bg, &acliv1.CreateVolumeGroupRequest{Name: "db"}))
	other, err := f.tasks.Begin(bg, "vm", acliv1.TaskOperation_kVmUpdate, []*acliv1.EntityRef{{Name: "web"}}, "uuid-web")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.AttachToVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "db", Vm: "web"})
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "vm web is busy with task task-2 (kVmUpdate)") {
		t.Fatalf("attach to a busy vm: %v", err)
	}
	if held := f.tasks.Held(); len(held) != 1 || held[0] != "uuid-web" {
		t.Fatalf("held after a refusal: %v", held)
	}
	other.Drop()
	ok(t)(f.svc.AttachToVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "db", Vm: "web"}))
	_, err = f.svc.AttachToVm(bg, &acliv1.AttachToVmRequest{VolumeGroup: "db", Vm: "wbe"})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `did you mean "web"`) {
		t.Fatalf("attach to a misspelt vm: %v", err)
	}
	want := []string{
		"kVgCreate: volume group db created (target iqn.2010-06.dev.acli:db-" + vgUUID(t, f, "db")[:8] + ")",
		"kVmUpdate: dropped",
		"kVgAttachToVm: volume group db attached to vm web",
	}
	if got := f.tasks.Ended(); !slices.Equal(got, want) {
		t.Fatalf("tasks ended %q, want %q", got, want)
	}
}

func vgUUID(t *testing.T, f *fixture, name string) string {
	t.Helper()
	var id string
	f.db.View(func(tx *state.Tx) {
		vg, err := storage.Find(tx, "volume_group", name)
		if err != nil {
			t.Fatal(err)
		}
		id = vg.Uuid
	})
	return id
}
