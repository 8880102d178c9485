// Package image holds disk and ISO images, VM snapshots and the deletion
// of both. Records are read from the committed state (state.DB.View) and
// changed only by the writes a task commits at its end (state.DB.Update,
// where the capacity rule is checked); volumes are imported, copied and
// removed through the storage the manager hands in.
package image

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
	"github.com/acli-dev/acli/manager/tasks"
)

// Service is the image and snapshot feature behind manager/rpc's
// adapters (rpc.Images, rpc.Snapshots).
type Service struct {
	DB *state.DB
	// Tasks launches the tasks that copy or import volumes.
	Tasks Tasks
	// Quick begins the tasks that only commit records (edits, deletes).
	Quick   tasks.Starter
	Volumes Volumes
}

// Tasks is the manager's task engine as images and snapshots launch
// their tasks.
type Tasks interface {
	// Begin registers a running task. plan runs while no other task
	// starts or ends: what it reads of the committed state and of held
	// stays true until the task holds its locks. Its error refuses the
	// task; nothing is registered then.
	Begin(ctx context.Context, plan func(Held) (Start, error)) (*tasks.Task, error)
	// Launch persists the running task, returns it and does work in the
	// background; its end (writes and final record) is committed in one
	// transaction, a failure recorded on the task.
	Launch(ctx context.Context, t *tasks.Task, w Work) (*acliv1.Task, error)
	// Progress reports a running task's percent and current line.
	Progress(t *tasks.Task, percent int32, line string)
	// PastReturn makes a cancellable task no longer so: its work has
	// gone past the point where it can undo itself.
	PastReturn(t *tasks.Task)
}

// Held is the table of entities tasks hold.
type Held interface {
	// Changing is the task changing an entity (nil if none).
	Changing(id string) *acliv1.Task
	// Holding is the task changing an entity, else the first one copying
	// from it (nil if none).
	Holding(id string) *acliv1.Task
}

// Start is what a task is and holds.
type Start struct {
	Op   acliv1.TaskOperation
	Refs []*acliv1.EntityRef
	// Locks are the entities (or name keys) it changes: no other task may
	// change them or copy from them until it ends.
	Locks []string
	// Reads are the entities it copies from: any number of tasks may read
	// one, none may change it meanwhile.
	Reads []string
	// Cancellable tasks stop when cancelled and undo what they did.
	Cancellable bool
}

// Work does a task's job, without any lock held.
type Work func(ctx context.Context, t *tasks.Task) (Outcome, error)

// Outcome is what a task's work produced.
type Outcome struct {
	// Writes are committed with the task's final record.
	Writes []state.Write
	// Message is the task's closing line and the event text.
	Message string
	// Undo, when the writes are refused, removes what the work made
	// outside the store (volumes).
	Undo func()
}

// Volumes is the cluster's storage.
type Volumes interface {
	// Container checks a container name ("" is the default container) and
	// returns it.
	Container(name string) (string, error)
	// Import fetches url into a new volume id of container, reporting
	// bytes read; on failure no volume remains.
	Import(ctx context.Context, container, id, url, sha256 string, progress func(done, total int64)) (driver.Imported, error)
	// Copy makes the copies, every running VM they read paused once for
	// all of them (copies of one VM's vDisks are of one instant). On
	// failure none of them remains.
	Copy(ctx context.Context, copies []storage.Copy) error
	// Fits refuses early, naming what, adding bytes that do not fit a
	// container as committed; the capacity rule (state.RuleCapacity)
	// refuses the commit of whatever still does not fit then.
	Fits(container string, add int64, what string) error
	// Remove deletes the volumes of records that are gone; a failure
	// leaves unused space, never a record without its data.
	Remove(ctx context.Context, disks []*acliv1.Disk)
}

// undoCopies removes copies whose records were refused.
func (s *Service) undoCopies(ctx context.Context, copies []storage.Copy) func() {
	return func() { s.Volumes.Remove(context.WithoutCancel(ctx), storage.Disks(copies)) }
}

// busy is the refusal of an entity a task holds.
func busy(kind, name string, t *acliv1.Task) error {
	return apierr.Busy(kind, name, t.Uuid, t.Operation.String())
}
