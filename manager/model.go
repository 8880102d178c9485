package manager

import (
	"context"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/hostsync"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// model is what the manager keeps beside the committed state (state.DB).
// Which task holds which entity is state.DB's (holds); the tasks are the
// engine's (manager/tasks).
type model struct {
	// settled is when each VM last changed through clusterd: a task let go
	// of it, or a host report was applied (hostsync, under its own lock).
	settled *hostsync.Settled
}

// vmRec is a committed VM read from the DB with its mod revision.
type vmRec struct {
	pb  *acliv1.Vm
	rev int64
}

func (md *model) init(db *state.DB) {
	md.settled = &hostsync.Settled{DB: db}
}

// Store keys.
const (
	clusterKey = state.ClusterKey
	hostPrefix = state.HostPrefix
	vmPrefix   = state.VmPrefix
	taskPrefix = tasks.Prefix
)

// write is one change in a transaction: msg nil deletes the key; rev is the
// mod revision the key must have now (0: must not exist, state.AnyRev: no check).
type write struct {
	key string
	msg proto.Message
	rev int64
}

// commit applies writes through the one transaction path (state.DB.Update),
// which checks every rule on the state they would leave and refuses the
// commit with the rules it breaks. Host records are applied to the model
// here, newest revision first wins, so a host's state is never set back by
// a slower writer.
func (m *Manager) commit(ctx context.Context, ws []write) (int64, error) {
	return m.commitTx(ctx, ws, false, nil)
}

// commitObserved commits what the hosts report: the placement rules judge
// decisions only (hostsync.Reconciler).
func (m *Manager) commitObserved(ctx context.Context, ws []write) (int64, error) {
	return m.commitTx(ctx, ws, true, nil)
}

func (m *Manager) commitTx(ctx context.Context, ws []write, observed bool, holds func(tx *state.Tx) error) (int64, error) {
	type change struct{ prev, next *acliv1.Vm }
	var moved []change // VMs changed: their iSCSI sessions follow (manager/storage)
	rev, err := m.db.Update(ctx, func(tx *state.Tx) error {
		if observed {
			tx.Observed()
		}
		moved = moved[:0]
		for _, w := range ws {
			if id, ok := strings.CutPrefix(w.key, vmPrefix); ok {
				if prev := tx.Vm(id); prev != nil {
					next, _ := w.msg.(*acliv1.Vm)
					moved = append(moved, change{prev, next})
				}
			}
			if w.msg == nil {
				tx.Delete(w.key, w.rev)
			} else {
				tx.Put(w.key, w.msg, w.rev)
			}
		}
		if holds != nil {
			return holds(tx)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, c := range moved {
		m.vgs.VmMoved(c.prev, c.next)
	}
	for _, w := range ws {
		if id, ok := strings.CutPrefix(w.key, hostPrefix); ok {
			m.hostCommitted(id)
		}
	}
	return rev, nil
}

// load reads the whole model from the store: the records the rules are
// checked on through the DB, the tasks directly.
func (m *Manager) load(ctx context.Context) error {
	if err := m.db.Load(ctx); err != nil {
		return err
	}
	m.db.View(func(tx *state.Tx) {
		for _, h := range tx.Hosts() {
			m.beats.Track(h.Uuid, h.NodeState == acliv1.NodeState_kNodeDown, timeNow())
		}
	})
	return m.tasks.Load(ctx)
}

// ---- hosts ----

// hostRec is a committed host read from the DB with its mod revision.
type hostRec struct {
	pb  *acliv1.Host
	rev int64
}

func hostRecOf(tx *state.Tx, h *acliv1.Host) *hostRec {
	if h == nil {
		return nil
	}
	return &hostRec{pb: h, rev: tx.Rev(state.HostKey(h.Uuid))}
}

// hostAt is the committed host with UUID id (nil if none).
func (m *Manager) hostAt(id string) (r *hostRec) {
	m.db.View(func(tx *state.Tx) { r = hostRecOf(tx, tx.Host(id)) })
	return r
}

// hostCommitted follows a committed host change outside the DB: the
// heartbeat table learns whether the host is down (read back from the DB
// under m.mu, so the last of concurrent writers stores the newest state).
func (m *Manager) hostCommitted(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.hostAt(id); r != nil {
		m.beats.Track(id, r.pb.NodeState == acliv1.NodeState_kNodeDown, timeNow())
	} else {
		m.beats.Forget(id)
	}
}

// ---- VMs ----

func vmRecOf(tx *state.Tx, v *acliv1.Vm) *vmRec {
	if v == nil {
		return nil
	}
	return &vmRec{pb: v, rev: tx.Rev(state.VmKey(v.Uuid))}
}

// vmAt is the committed VM with UUID id (nil if none).
func (m *Manager) vmAt(id string) (r *vmRec) {
	m.db.View(func(tx *state.Tx) { r = vmRecOf(tx, tx.Vm(id)) })
	return r
}

// busyLocked is the task holding an entity (state.DB's holds), nil if
// none.
func (m *Manager) busyLocked(id string) *taskRec {
	return m.tasks.Holder(id)
}

// takeLocked takes ids for t, a running task, in a commit of its own (a
// VM a long task acts on for a while, a claim its work makes), all or
// none: the busy rule is checked there as at a task's start, so it
// answers the task holding or reading one of them instead ("" when
// taken). check, when not nil, runs in the commit first; its error
// refuses it. A task's own entities are taken by its start commit.
func (m *Manager) takeLocked(ctx context.Context, t *taskRec, check func(tx *state.Tx) error, ids ...string) (holder string, err error) {
	_, err = m.db.Update(ctx, func(tx *state.Tx) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		tx.Take(t.PB().Uuid, ids...)
		return nil
	})
	if _, h, ok := state.Busy(err); ok {
		return h, nil
	}
	return "", err
}

// releaseLocked ends t's hold on an entity; a VM's earlier host reports
// become stale.
func (m *Manager) releaseLocked(t *taskRec, id string) {
	if m.db.Holder(id) != t.PB().Uuid {
		return
	}
	m.db.LetGoNow(t.PB().Uuid, id)
	m.settled.Settle(id, time.Now())
}
