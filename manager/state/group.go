package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/acli-dev/acli/manager/store"
)

// Group commit. A store transaction costs a round trip to a quorum (etcd)
// or an fsync (bbolt), so one commit at a time caps the rate at one per
// round trip. Instead, Update checks each commit under wmu against the
// state the earlier ones leave, applies it to that state at once
// (provisionally), and queues its writes; one sender sends what queued
// while the previous transaction was in flight as the next transaction, so
// N waiting commits cost one round trip and one leadership compare.
//
// A commit that writes a key an unsettled commit writes waits for it and is
// checked again, so compares see real revisions and no transaction writes a
// key twice. When a transaction fails, its provisional state is undone, with
// that of every commit queued after it, which are checked again (their
// checks counted on the failed ones). A failed compare fails only the commit
// that staged it: the others batched with it are checked again and resent,
// so one stale revision does not fail unrelated commits. Any other error
// (the store unreachable, the leadership lost) is every commit's.

// maxGroupOps bounds the compares and the writes of one transaction (etcd
// refuses more than --max-txn-ops, 128 by default, of either); a commit
// larger than that alone is sent alone.
const maxGroupOps = 100

// What a reader sees. Readers (View) see the state the accepted commits
// leave, provisional ones included: the state the rules are checked on, so
// a reader is never shown a state the next commit would contradict (the
// Raft leader's view: a proposal is counted before it is durable). A record
// whose commit is not durable yet is flagged: its Tx.Rev is a pending token
// (below AnyRev, one per transaction), never a store revision, so no
// revision is handed out that the store never had. A write that compares
// against a token is resolved when it is checked, after the commit the
// token names settled: against the revision that commit got, or refused as
// a conflict if it failed or the record changed since.

// firstToken is the pending token of the first batch; later ones count down.
const firstToken = -2

// Pending reports whether rev, from Tx.Rev, is a pending token: the record
// was read while its commit was in flight.
func Pending(rev int64) bool { return rev < AnyRev }

// errRetry ends a commit that was undone because one before it failed: it is
// checked again.
var errRetry = errors.New("state: an earlier commit failed; check again")

type group struct {
	queue   []*batch          // checked, not yet sent; the last one takes new commits
	sending *batch            // in flight
	pending map[string]*batch // key -> the last unsettled batch writing it
	// settledBy is the pending token of the batch that last wrote each key
	// (kept while it is the last write), so a compare on it resolves.
	settledBy map[string]int64
	batches   int64 // batches opened: the next one's token is firstToken-batches
	// endedByPending are arrivals that unsettled commits ended: undone with
	// them unless Depart ended them meanwhile. Guarded by mu.
	endedByPending map[uint64]Arrival
}

// batch is the commits sent in one store transaction.
type batch struct {
	ctx     context.Context
	conds   []store.Cond
	ops     []store.Op
	undo    []undoRec
	took    []holdOp // holds its commits took
	holds   []holdOp // its commits' hold ops: let-gos apply once it is durable
	commits []*commit
	done    chan struct{}
	token   int64 // its records' Tx.Rev until it settles
	rev     int64
	err     error
}

// commit is one Update's part of a batch.
type commit struct {
	b     *batch
	conds []string // the keys its compares are on
	err   error    // set when the batch failed
}

// undoRec is what one provisional write replaced.
type undoRec struct {
	key   string
	prev  proto.Message // nil: there was none
	rev   int64
	from  int64 // settledBy before
	ended []heldArrival
}

type heldArrival struct {
	id uint64
	a  Arrival
}

// stage checks one commit and queues it. It returns the commit to wait
// for, or an unsettled batch to wait for before trying again, or neither
// when there is nothing to commit.
func (db *DB) stage(ctx context.Context, fn func(tx *Tx) error) (c *commit, wait *batch, err error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	tx := &Tx{db: db, staged: map[string]int{}}
	// The state changes only under wmu, so fn and the checks read it
	// without db.mu being held for long.
	if err := fn(tx); err != nil {
		return nil, nil, err
	}
	if len(tx.writes) == 0 {
		if len(tx.holds) == 0 {
			return nil, nil, nil
		}
		// Only holds: nothing to store.
		if vs, _ := db.holds.take(tx.holds); len(vs) > 0 {
			return nil, nil, &ViolationError{Violations: vs}
		}
		db.holds.letGoOps(tx.holds)
		return nil, nil, nil
	}
	for _, w := range tx.writes {
		if p := db.pending[w.Key]; p != nil {
			return nil, p, nil
		}
	}
	for i, w := range tx.writes {
		if !Pending(w.Rev) {
			continue
		}
		if db.settledBy[w.Key] != w.Rev {
			return nil, nil, &store.ConflictError{Mismatches: []store.Mismatch{{Key: w.Key, Expected: w.Rev, Actual: db.revs[w.Key]}}}
		}
		tx.writes[i].Rev = db.revs[w.Key]
	}
	db.mu.RLock()
	vs := tx.check()
	db.mu.RUnlock()
	if len(vs) > 0 {
		return nil, nil, &ViolationError{Violations: vs}
	}
	conds := make([]store.Cond, 0, len(tx.writes))
	ops := make([]store.Op, 0, len(tx.writes))
	encoded := make([][]byte, len(tx.writes))
	for i, w := range tx.writes {
		if w.Rev != AnyRev {
			conds = append(conds, store.Cond{Key: w.Key, ModRev: w.Rev})
		}
		if w.Msg == nil {
			ops = append(ops, store.DeleteOp(w.Key))
			continue
		}
		v, err := proto.Marshal(w.Msg)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding %s: %w", w.Key, err)
		}
		ops = append(ops, store.PutOp(w.Key, v))
		encoded[i] = v
	}
	// Holds are checked where they are taken: LetGoNow changes them
	// outside commits.
	vs, took := db.holds.take(tx.holds)
	if len(vs) > 0 {
		return nil, nil, &ViolationError{Violations: vs}
	}
	db.mu.Lock()
	b := db.openBatch(ctx, len(conds), len(ops))
	c = &commit{b: b}
	for _, cd := range conds {
		c.conds = append(c.conds, cd.Key)
	}
	b.commits = append(b.commits, c)
	b.conds = append(b.conds, conds...)
	b.ops = append(b.ops, ops...)
	for i, w := range tx.writes {
		db.pending[w.Key] = b
		if newRecord(w.Key) == nil {
			continue
		}
		u := undoRec{key: w.Key, prev: db.recordLocked(w.Key), rev: db.revs[w.Key], from: db.settledBy[w.Key]}
		u.ended = db.applyEncoded(w.Key, w.Msg, encoded[i], b.token)
		for _, e := range u.ended {
			db.endedByPending[e.id] = e.a
		}
		b.undo = append(b.undo, u)
	}
	b.took = append(b.took, took...)
	b.holds = append(b.holds, tx.holds...)
	db.mu.Unlock()
	if db.sending == nil {
		db.sending = db.queue[0]
		db.queue = db.queue[1:]
		go db.send(db.sending)
	}
	return c, nil, nil
}

// openBatch returns the batch taking new commits, starting one when the
// last is full. Called with wmu held.
func (db *DB) openBatch(ctx context.Context, conds, ops int) *batch {
	if n := len(db.queue); n > 0 {
		last := db.queue[n-1]
		if len(last.conds)+conds <= maxGroupOps && len(last.ops)+ops <= maxGroupOps {
			return last
		}
	}
	// The transaction outlives the commit that opened it: it must not be
	// cancelled with that caller (the store bounds it by its own timeout).
	b := &batch{ctx: context.WithoutCancel(ctx), done: make(chan struct{}), token: firstToken - db.batches}
	db.batches++
	db.queue = append(db.queue, b)
	return b
}

// send commits batches until none is queued.
func (db *DB) send(b *batch) {
	for b != nil {
		rev, err := db.st.Txn(b.ctx, b.conds, b.ops)
		db.wmu.Lock()
		db.mu.Lock()
		var undone []*batch
		if err != nil {
			// Undo the later batches first: they were applied over this one.
			undone = db.queue
			db.queue = nil
			for i := len(undone) - 1; i >= 0; i-- {
				db.undoLocked(undone[i])
				undone[i].err = errRetry
				undone[i].failCommits(errRetry)
			}
			db.undoLocked(b)
			b.err = err
			b.failCommits(err)
		} else {
			b.rev = rev
			for _, u := range b.undo {
				for _, e := range u.ended {
					delete(db.endedByPending, e.id)
				}
				if db.pending[u.key] == b {
					if _, ok := db.revs[u.key]; ok {
						db.revs[u.key] = rev
					}
					db.settledBy[u.key] = b.token
				}
			}
			for _, op := range b.ops {
				if db.pending[op.Key] == b {
					delete(db.pending, op.Key)
				}
			}
			db.holds.letGoOps(b.holds)
		}
		db.sending = nil
		if len(db.queue) > 0 {
			db.sending = db.queue[0]
			db.queue = db.queue[1:]
		}
		next := db.sending
		db.mu.Unlock()
		db.wmu.Unlock()
		close(b.done)
		for _, u := range undone {
			close(u.done)
		}
		b = next
	}
}

// failCommits gives each commit of a failed batch its outcome: a commit
// whose compares failed gets the conflict on its own keys; the others are
// checked again when the conflict was not theirs.
func (b *batch) failCommits(err error) {
	var ce *store.ConflictError
	if !errors.As(err, &ce) || len(b.commits) == 1 {
		for _, c := range b.commits {
			c.err = err
		}
		return
	}
	claimed := 0
	for _, c := range b.commits {
		var mine []store.Mismatch
		for _, m := range ce.Mismatches {
			if slices.Contains(c.conds, m.Key) {
				mine = append(mine, m)
			}
		}
		if len(mine) == 0 {
			c.err = errRetry
			continue
		}
		claimed += len(mine)
		c.err = &store.ConflictError{Mismatches: mine}
	}
	if claimed == 0 {
		// No commit compared the keys named: nothing tells whose the
		// conflict was.
		for _, c := range b.commits {
			c.err = err
		}
	}
}

// undoLocked restores what a batch's provisional writes replaced, last
// first, and the arrivals they ended.
func (db *DB) undoLocked(b *batch) {
	db.holds.untake(b.took)
	for i := len(b.undo) - 1; i >= 0; i-- {
		u := b.undo[i]
		db.applyLocked(u.key, u.prev, u.rev)
		if u.from != 0 {
			db.settledBy[u.key] = u.from
		}
		for _, e := range u.ended {
			if _, ok := db.endedByPending[e.id]; ok {
				delete(db.endedByPending, e.id)
				db.arrivals[e.id] = e.a
				db.reserved[e.a.Host] += e.a.Bytes
			}
		}
	}
	for _, op := range b.ops {
		if db.pending[op.Key] == b {
			delete(db.pending, op.Key)
		}
	}
}

// recordLocked is the record key holds now (nil: none).
func (db *DB) recordLocked(key string) proto.Message {
	if key == ClusterKey && db.cluster != nil {
		return db.cluster
	}
	if id, ok := strings.CutPrefix(key, HostPrefix); ok && db.hosts[id] != nil {
		return db.hosts[id]
	}
	if id, ok := strings.CutPrefix(key, VmPrefix); ok && db.vms[id] != nil {
		return db.vms[id]
	}
	if id, ok := strings.CutPrefix(key, NetworkPrefix); ok {
		if n, ok := db.nets.Get(id); ok {
			return n
		}
	}
	if name, ok := strings.CutPrefix(key, SwitchPrefix); ok {
		if vs, ok := db.switches.Get(name); ok {
			return vs
		}
	}
	if id, ok := strings.CutPrefix(key, VmGroupPrefix); ok {
		if g, ok := db.groups.Get(id); ok {
			return g
		}
	}
	if id, ok := strings.CutPrefix(key, ImagePrefix); ok && db.imgs[id] != nil {
		return db.imgs[id]
	}
	if id, ok := strings.CutPrefix(key, SnapshotPrefix); ok && db.snaps[id] != nil {
		return db.snaps[id]
	}
	if id, ok := strings.CutPrefix(key, VgPrefix); ok && db.vgs[id] != nil {
		return db.vgs[id]
	}
	return nil
}
