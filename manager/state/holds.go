package state

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// RuleBusy: an entity is changed by one task at a time.
const RuleBusy = "BUSY"

// RuleChanged: a task starts on the records its request read.
const RuleChanged = "CHANGED"

// Holds are the busy table: which task holds (is changing) which entity,
// by UUID or by a claim key ("mac:…"). A task's holds are taken in the
// transaction that commits its start (with its checks, undone if it
// fails) and let go when the one that commits its end is durable, so no
// commit sees an entity held twice, and a task whose end is not durable
// still holds what it changed. They are not stored: a restart ends every
// task. A transaction that only takes or lets go of holds is applied at
// once.
//
// They have a lock of their own, so a reader may ask for one inside a View
// (and TakeNow) without taking DB.mu again.
type holdTable struct {
	mu sync.Mutex
	m  map[string]string // entity -> the task holding it
}

type holdOp struct {
	task, id string
	take     bool
}

// Take takes ids for task in this transaction; an id another task holds
// refuses the commit (RuleBusy). Taking an id the task holds is a no-op.
func (tx *Tx) Take(task string, ids ...string) {
	tx.holdOps(task, true, ids)
}

// LetGo lets go of task's holds on ids once this transaction is durable
// (ids task does not hold are skipped).
func (tx *Tx) LetGo(task string, ids ...string) {
	tx.holdOps(task, false, ids)
}

func (tx *Tx) holdOps(task string, take bool, ids []string) {
	if tx.readOnly {
		panic("state: hold in a View")
	}
	for _, id := range ids {
		tx.holds = append(tx.holds, holdOp{task: task, id: id, take: take})
	}
}

// Busy reports whether err refused a commit because another task holds
// an entity it takes: the first such entity and the task holding it.
func Busy(err error) (id, task string, ok bool) {
	var ve *ViolationError
	if !errors.As(err, &ve) {
		return "", "", false
	}
	for _, v := range ve.Violations {
		if v.Rule == RuleBusy {
			return v.Subject, v.Holder, true
		}
	}
	return "", "", false
}

// ChangedSince reports whether err refused a commit because a record it
// was to start on changed (Unchanged): the first such record's UUID.
func ChangedSince(err error) (id string, ok bool) {
	var ve *ViolationError
	if !errors.As(err, &ve) {
		return "", false
	}
	for _, v := range ve.Violations {
		if v.Rule == RuleChanged {
			return v.Subject, true
		}
	}
	return "", false
}

// Seen are the revisions of the records a request read, by UUID, before
// its task takes them: a task starts on what its request decided on or
// not at all (Unchanged).
type Seen map[string]int64

// Seen reads the revisions of the records ids name. Hosts are left out:
// their reports change them whatever task holds them, so a task acting on
// a host reads it again where it commits (TransitionHost).
func (tx *Tx) Seen(ids ...string) Seen {
	var s Seen
	for _, id := range ids {
		key := tx.recordKey(id)
		if key == "" {
			continue
		}
		if s == nil {
			s = Seen{}
		}
		s[id] = tx.Rev(key)
	}
	return s
}

// Unchanged refuses a commit (RuleChanged) when a record of seen changed
// since it was read: a commit landed over it, or the one that wrote it
// failed. A revision read while its commit was in flight is the one that
// commit lands with.
func (tx *Tx) Unchanged(seen Seen) error {
	var vs []Violation
	for id, rev := range seen {
		key := tx.recordKey(id) // "": it is gone
		if now := tx.Rev(key); key != "" && (now == rev || Pending(rev) && tx.db.settledBy[key] == rev) {
			continue
		}
		vs = append(vs, Violation{Rule: RuleChanged, Subject: id,
			Description: fmt.Sprintf("%s changed since the request read it", id)})
	}
	if len(vs) > 0 {
		slices.SortFunc(vs, func(a, b Violation) int { return strings.Compare(a.Subject, b.Subject) })
		return &ViolationError{Violations: vs}
	}
	return nil
}

// recordKey is the key of the record (not a host's) with UUID id, "" if
// none.
func (tx *Tx) recordKey(id string) string {
	switch {
	case tx.Vm(id) != nil:
		return VmKey(id)
	case tx.Network(id) != nil:
		return NetworkKey(id)
	case tx.VolumeGroup(id) != nil:
		return VgKey(id)
	case tx.Image(id) != nil:
		return ImageKey(id)
	case tx.Snapshot(id) != nil:
		return SnapshotKey(id)
	case tx.VmGroup(id) != nil:
		return VmGroupKey(id)
	}
	return ""
}

// Holder is the task holding id ("" if none), with this transaction's
// takes over the committed holds.
func (tx *Tx) Holder(id string) string {
	h := tx.db.holds.get(id)
	for _, op := range tx.holds {
		if op.id == id && op.take && h == "" {
			h = op.task
		}
	}
	return h
}

// Holder is the task holding id ("" if none).
func (db *DB) Holder(id string) string { return db.holds.get(id) }

// TakeNow takes ids for task outside a transaction, all or none: it
// returns the task holding one of them, else "". It waits for no commit.
func (db *DB) TakeNow(task string, ids ...string) (heldBy string) {
	h := &db.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if o := h.m[id]; o != "" && o != task {
			return o
		}
	}
	for _, id := range ids {
		h.m[id] = task
	}
	return ""
}

// LetGoNow lets go of task's holds on ids outside a transaction (a task
// that never started, or holds taken and let go inside a task).
func (db *DB) LetGoNow(task string, ids ...string) {
	db.holds.letGo(task, ids)
}

// HeldBy are the ids task holds, sorted.
func (db *DB) HeldBy(task string) []string {
	h := &db.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for id, t := range h.m {
		if t == task {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (h *holdTable) get(id string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[id]
}

// take applies the takes of ops, all or none: an id another task holds
// refuses them (RuleBusy). It returns the ids it took, for an undo.
func (h *holdTable) take(ops []holdOp) (vs []Violation, took []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	taken := map[string]string{}
	for _, op := range ops {
		if !op.take {
			continue
		}
		o := h.m[op.id]
		if o == "" {
			o = taken[op.id]
		}
		if o != "" && o != op.task {
			vs = append(vs, Violation{Rule: RuleBusy, Subject: op.id, Holder: o,
				Description: fmt.Sprintf("%s is busy with task %s", op.id, o)})
			continue
		}
		taken[op.id] = op.task
	}
	if len(vs) > 0 {
		return vs, nil
	}
	for _, op := range ops {
		if op.take && h.m[op.id] == "" {
			h.m[op.id] = op.task
			took = append(took, op.id)
		}
	}
	return nil, took
}

// letGoOps applies the let-gos of ops.
func (h *holdTable) letGoOps(ops []holdOp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, op := range ops {
		if !op.take && h.m[op.id] == op.task {
			delete(h.m, op.id)
		}
	}
}

func (h *holdTable) letGo(task string, ids []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if h.m[id] == task {
			delete(h.m, id)
		}
	}
}

// untake undoes take.
func (h *holdTable) untake(took []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range took {
		delete(h.m, id)
	}
}
