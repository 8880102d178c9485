package manager

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/hostsync"
)

// Hosts join (host.add) and leave (host.remove) through manager/hostsync's
// Members; this is its view of the manager.

// membersManager is hostsync.MembersManager over this manager.
type membersManager struct{ m *Manager }

// membersLocked is what host.add and host.remove read and begin under Manager.mu.
type membersLocked struct{ m *Manager }

func (c membersManager) Locked(fn func(l hostsync.MembersLocked) error) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return fn(membersLocked(c))
}

func (c membersManager) Launch(ctx context.Context, t *taskRec, w func(ctx context.Context) (hostsync.Done, error)) (*acliv1.Task, error) {
	return c.m.launch(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		d, err := w(ctx)
		out := outcome{message: d.Message}
		for _, w := range d.Writes {
			out.writes = append(out.writes, write{key: w.Key, msg: w.Msg, rev: w.Rev})
		}
		if d.Committed != nil {
			out.apply = func(int64) { d.Committed() }
		}
		return out, err
	})
}

func (c membersManager) Progress(t *taskRec, percent int32, line string) {
	c.m.progress(t, percent, "%s", line)
}

func (c membersManager) Update(t *taskRec, fn func(*acliv1.Task)) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	t.Update(fn)
}

func (l membersLocked) Holder(id string) *taskRec { return l.m.heldLocked(id) }

func (l membersLocked) Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *taskRec {
	return l.m.newTaskLocked(op, refs, locks...)
}
