// Package vm is the VM lifecycle: create, update, delete and the power
// transitions. It decides (what a request may change, which transitions
// need the VM on or off, what a grown VM needs of its host) and reads
// committed records through state.DB; it reaches the rest of the manager
// (the lock that makes a task's claim atomic, the task engine, placement,
// arrivals) only through Cluster and Locked.
package vm

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// Cluster is what the VM lifecycle needs of the manager.
type Cluster interface {
	// Locked runs fn holding the manager's lock: what fn reads and claims
	// through l stays true until it returns.
	Locked(fn func(l Locked) error) error
	// Read runs fn holding the manager's lock for reading.
	Read(fn func(r Reader))
	// Launch persists the task, returns it and runs w in the background.
	Launch(ctx context.Context, t *tasks.Task, w Work) (*acliv1.Task, error)
	// Progress sets a running task's percent and progress line.
	Progress(t *tasks.Task, percent int32, format string, args ...any)
	// Record commits the record of a VM the task holds, if it is still at
	// rev; the rules check the state it leaves.
	Record(ctx context.Context, next *acliv1.Vm, rev int64) error
	// CheckTarget re-validates, when it starts, the host a power-on chose.
	CheckTarget(host string) error
}

// Reader is what may be read under the manager's lock.
type Reader interface {
	// Task is the task changing an entity (nil if none).
	Task(id string) *tasks.Task
	// Storage is v as the API shows its storage: the disks' serving CVMs
	// and paths (and their vmdisk paths when asked), its volume groups.
	// It returns v itself when it adds nothing.
	Storage(v *acliv1.Vm, vmdiskPaths bool) *acliv1.Vm
}

// Locked is what may be read and claimed under the manager's lock.
type Locked interface {
	Reader
	// Holder is the task that holds an entity (nil if none).
	Holder(id string) *tasks.Task
	// Begin starts a task of op naming refs and holding the locks.
	Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *tasks.Task
	// Forget drops a task Begin started that will not run.
	Forget(t *tasks.Task)
	// Place chooses the host a VM powers on on: the named one if it may
	// take it, else placement's choice; a power-on HA's guarantee would
	// refuse is refused.
	Place(v *acliv1.Vm, named string) (*acliv1.Host, error)
	// Arriving counts a VM on its way to host (an evacuation of the host
	// waits for it) until done is called, under the lock.
	Arriving(host string) (done func())
}

// Work does a launched task's job without the lock: it calls the driver,
// then says what to record.
type Work func(ctx context.Context, t *tasks.Task) (Outcome, error)

// Outcome is what a task's work produced: the writes that record it,
// committed with the task's final state, and its closing line.
type Outcome struct {
	Writes  []state.Write
	Message string
}

// Service is the VM lifecycle behind manager/rpc's VM adapter.
type Service struct {
	c     Cluster
	tasks tasks.Starter
	db    *state.DB
	drv   driver.Driver
	disks Disks
}

// New makes the service: c for the manager, st for the tasks that only
// commit records (create, update, a power change with nothing to do), db
// for the committed state, drv to carry out on hosts, disks for the
// containers and volumes of VMs' disks.
func New(c Cluster, st tasks.Starter, db *state.DB, drv driver.Driver, disks Disks) *Service {
	return &Service{c: c, tasks: st, db: db, drv: drv, disks: disks}
}

// Ref names a VM in a task.
func Ref(v *acliv1.Vm) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kVm, Uuid: v.Uuid, Name: v.Name}
}

func hostRef(h *acliv1.Host) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kHost, Uuid: h.Uuid, Name: h.Name}
}

// put and del are a VM's writes.
func put(v *acliv1.Vm, rev int64) state.Write {
	return state.Write{Key: state.VmKey(v.Uuid), Msg: v, Rev: rev}
}
func del(v *acliv1.Vm, rev int64) state.Write { return state.Write{Key: state.VmKey(v.Uuid), Rev: rev} }

// onRelease adds f to what t releases when it ends (under the lock).
func onRelease(t *tasks.Task, f func()) {
	prev := t.Release
	t.Release = func() {
		if prev != nil {
			prev()
		}
		f()
	}
}

// reserve holds bytes of host's memory for v until t ends (a state.DB
// arrival, which every commit counts).
func (s *Service) reserve(t *tasks.Task, v *acliv1.Vm, host string, bytes int64) {
	id := s.db.Arrive(v.Uuid, host, bytes)
	onRelease(t, func() { s.db.Depart(id) })
}

// host is the committed record of a host (nil if none).
func (s *Service) host(id string) *acliv1.Host {
	var h *acliv1.Host
	if id != "" {
		s.db.View(func(tx *state.Tx) { h = tx.Host(id) })
	}
	return h
}
