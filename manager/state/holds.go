package state

import (
	"cmp"
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
// once: it is how a running task takes what it acts on for a while (a VM
// of an evacuation, a claim its work makes), the busy rule checked there.
//
// A task may instead hold an entity for reading (the key Read(id)): a
// clone copying a source vDisk, image or snapshot. Any number of tasks
// read an entity at once, while none changes it: a take of id is refused
// while another task reads it, and a read while another task holds it.
//
// They have a lock of their own, so a reader may ask for one inside a View
// (and LetGoNow) without taking DB.mu again.
type holdTable struct {
	mu sync.Mutex
	m  map[string]string   // entity -> the task holding it
	r  map[string][]string // entity -> the tasks reading it, first first
}

// readPrefix marks a hold key that reads its entity.
const readPrefix = "read:"

// Read is the key by which a task holds id for reading, among the keys
// Take, LetGo and LetGoNow take (and a task's locks).
func Read(id string) string { return readPrefix + id }

// ReadOf is the entity a Read key names, and whether key is one.
func ReadOf(key string) (id string, ok bool) { return strings.CutPrefix(key, readPrefix) }

type holdOp struct {
	task, id string
	take     bool
}

// Take takes ids for task in this transaction; an id another task holds,
// or reads, refuses the commit (RuleBusy), as does a Read(id) of an id
// another task holds. Taking an id the task holds is a no-op.
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

// Holder is the task holding id ("" if none); readers are not holders.
func (db *DB) Holder(id string) string { return db.holds.get(id) }

// Readers are the tasks reading id, the first to read it first.
func (db *DB) Readers(id string) []string {
	h := &db.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.r[id])
}

// LetGoNow lets go of task's holds on ids outside a transaction (a task
// that never started, or holds taken and let go inside a task).
func (db *DB) LetGoNow(task string, ids ...string) {
	db.holds.letGo(task, ids)
}

// HeldBy are the ids task holds, and the Read keys of those it reads,
// sorted.
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
	for id, rs := range h.r {
		if slices.Contains(rs, task) {
			out = append(out, Read(id))
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
// or reads, or a Read of an id another task holds, refuses them
// (RuleBusy, naming the entity and the first such task). It returns the
// takes it made, for an undo.
func (h *holdTable) take(ops []holdOp) (vs []Violation, took []holdOp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	taken := map[string]string{}  // this call's holds
	read := map[string][]string{} // and reads
	for _, op := range ops {
		if !op.take {
			continue
		}
		id, reads := ReadOf(op.id)
		o := cmp.Or(h.m[id], taken[id])
		if o == op.task {
			o = ""
		}
		if !reads && o == "" {
			o = other(op.task, h.r[id], read[id])
		}
		if o != "" {
			vs = append(vs, Violation{Rule: RuleBusy, Subject: id, Holder: o,
				Description: fmt.Sprintf("%s is busy with task %s", id, o)})
			continue
		}
		if reads {
			read[id] = append(read[id], op.task)
		} else {
			taken[id] = op.task
		}
	}
	if len(vs) > 0 {
		return vs, nil
	}
	for _, op := range ops {
		if !op.take {
			continue
		}
		if id, reads := ReadOf(op.id); reads {
			if !slices.Contains(h.r[id], op.task) {
				if h.r == nil {
					h.r = map[string][]string{}
				}
				h.r[id] = append(h.r[id], op.task)
				took = append(took, op)
			}
		} else if h.m[id] == "" {
			h.m[id] = op.task
			took = append(took, op)
		}
	}
	return nil, took
}

// other is the first task of the lists that is not task ("" if none).
func other(task string, lists ...[]string) string {
	for _, l := range lists {
		for _, t := range l {
			if t != task {
				return t
			}
		}
	}
	return ""
}

// letGoOps applies the let-gos of ops.
func (h *holdTable) letGoOps(ops []holdOp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, op := range ops {
		if !op.take {
			h.letGoLocked(op.task, op.id)
		}
	}
}

func (h *holdTable) letGo(task string, ids []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		h.letGoLocked(task, id)
	}
}

// letGoLocked ends task's hold of key (a Read's: its read), if it has it.
func (h *holdTable) letGoLocked(task, key string) {
	id, reads := ReadOf(key)
	if !reads {
		if h.m[id] == task {
			delete(h.m, id)
		}
		return
	}
	rs := slices.DeleteFunc(h.r[id], func(t string) bool { return t == task })
	if len(rs) == 0 {
		delete(h.r, id)
	} else {
		h.r[id] = rs
	}
}

// untake undoes take.
func (h *holdTable) untake(took []holdOp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, op := range took {
		h.letGoLocked(op.task, op.id)
	}
}
