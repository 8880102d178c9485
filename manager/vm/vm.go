// Package vm is the VM lifecycle: create, update, delete and the power
// transitions. It decides (what a request may change, which transitions
// need the VM on or off, what a grown VM needs of its host) and reads
// committed records, and which task holds a VM, through state.DB; it
// reaches the rest of the manager (the task engine, placement, arrivals,
// storage) only through Cluster, tasks.Starter and Disks.
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
	// Begin registers a task of op naming refs that will hold locks
	// (entity UUIDs) and starts on the records its request read (seen).
	// Nothing is taken yet: Launch's start commit takes them, refusing the
	// task as busy (another task took one) or changed (a record of seen
	// moved on). One another task holds or reads now refuses it at once as
	// busy, naming kind and refs[0].
	Begin(ctx context.Context, kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, seen state.Seen, locks ...string) (*tasks.Task, error)
	// Forget drops a task Begin registered that will not run.
	Forget(t *tasks.Task)
	// Place chooses the host v powers on on for t: the named one if it may
	// take it, else placement's choice; a power-on HA's guarantee would
	// refuse is refused. Atomically with the manager's other placements it
	// holds v's memory there and counts v as arriving (an evacuation of
	// the host waits for it) until t ends, and names the host among t's
	// entities.
	Place(t *tasks.Task, v *acliv1.Vm, named string) (*acliv1.Host, error)
	// Reserve runs fn among the manager's placements: memory fn finds free
	// on a host and holds there (state.DB.Arrive) is placed by no one else
	// meanwhile.
	Reserve(fn func() error) error
	// Launch starts the task (its start commit takes its entities, see
	// Begin), returns it and runs w in the background. A refused start
	// forgets the task.
	Launch(ctx context.Context, t *tasks.Task, w Work) (*acliv1.Task, error)
	// Progress sets a running task's percent and progress line.
	Progress(t *tasks.Task, percent int32, format string, args ...any)
	// Record commits the record of a VM the task holds, if it is still at
	// rev; the rules check the state it leaves.
	Record(ctx context.Context, next *acliv1.Vm, rev int64) error
	// CheckTarget re-validates, when it starts, the host a power-on chose.
	CheckTarget(host string) error
	// Storage is v as the API shows its storage: the disks' serving CVMs
	// and paths (and their vmdisk paths when asked), its volume groups.
	// It returns v itself when it adds nothing.
	Storage(v *acliv1.Vm, vmdiskPaths bool) *acliv1.Vm
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

// put and del are a VM's writes.
func put(v *acliv1.Vm, rev int64) state.Write {
	return state.Write{Key: state.VmKey(v.Uuid), Msg: v, Rev: rev}
}
func del(v *acliv1.Vm, rev int64) state.Write { return state.Write{Key: state.VmKey(v.Uuid), Rev: rev} }

// host is the committed record of a host (nil if none).
func (s *Service) host(id string) *acliv1.Host {
	var h *acliv1.Host
	if id != "" {
		s.db.View(func(tx *state.Tx) { h = tx.Host(id) })
	}
	return h
}
