package state_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

// gatedStore holds each transaction until the test lets it go, and can
// fail the next one.
type gatedStore struct {
	store.Store
	gate  chan error // nil: pass; an error: fail with it
	armed atomic.Bool
	txns  atomic.Int32
}

func (g *gatedStore) Txn(ctx context.Context, conds []store.Cond, ops []store.Op) (int64, error) {
	g.txns.Add(1)
	if g.armed.Load() {
		if err := <-g.gate; err != nil {
			return 0, err
		}
	}
	return g.Store.Txn(ctx, conds, ops)
}

func gatedDB(t *testing.T) (*state.DB, *gatedStore, store.Store) {
	t.Helper()
	st, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := &gatedStore{Store: st, gate: make(chan error)}
	db := seedDB(t, g)
	g.txns.Store(0)
	g.armed.Store(true)
	return db, g, st
}

type result struct {
	rev int64
	err error
}

// updateAsync starts an Update staging put and returns its result channel.
func updateAsync(db *state.DB, put func(tx *state.Tx)) <-chan result {
	out := make(chan result, 1)
	go func() {
		rev, err := db.Update(context.Background(), func(tx *state.Tx) error { put(tx); return nil })
		out <- result{rev, err}
	}()
	return out
}

// waitVisible waits until the DB shows VM id (committed or on its way).
func waitVisible(t *testing.T, db *state.DB, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		db.View(func(tx *state.Tx) {
			for _, id := range ids {
				if tx.Vm(id) != nil {
					n++
				}
			}
		})
		if n == len(ids) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %v staged", n, ids)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWaitingCommitsShareOneTransaction(t *testing.T) {
	db, g, st := gatedDB(t)
	first := updateAsync(db, func(tx *state.Tx) { put(tx, vm("first", "", gib)) })
	waitVisible(t, db, "uuid-first")
	var rest []<-chan result
	var ids []string
	for i := range 10 {
		name := fmt.Sprintf("v%d", i)
		rest = append(rest, updateAsync(db, func(tx *state.Tx) { tx.Put(state.VmKey("uuid-"+name), vm(name, "", gib), 0) }))
		ids = append(ids, "uuid-"+name)
	}
	waitVisible(t, db, ids...)
	g.gate <- nil // the first transaction
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	g.gate <- nil // the ten others, in one
	var rev int64
	for _, ch := range rest {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		if rev != 0 && r.rev != rev {
			t.Errorf("revision %d, want %d: the queued commits were not sent together", r.rev, rev)
		}
		rev = r.rev
	}
	if n := g.txns.Load(); n != 2 {
		t.Errorf("%d transactions for 11 commits, want 2", n)
	}
	// What was sent is what the store holds.
	db2 := state.NewDB(st)
	if err := db2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	db2.View(func(tx *state.Tx) {
		if n := len(tx.Vms()); n != 13 {
			t.Errorf("%d VMs stored, want 13", n)
		}
		if r := tx.Rev(state.VmKey("uuid-v3")); r != rev {
			t.Errorf("stored revision %d, want %d", r, rev)
		}
	})
	db.View(func(tx *state.Tx) {
		if r := tx.Rev(state.VmKey("uuid-v3")); r != rev {
			t.Errorf("committed revision %d, want %d", r, rev)
		}
	})
}

func TestFailedTransactionIsUndoneAndLaterCommitsRechecked(t *testing.T) {
	db, g, st := gatedDB(t)
	// The first commit places c on h2 (4 GiB of 8) and fails in the store.
	first := updateAsync(db, func(tx *state.Tx) { put(tx, vm("c", "h2", 4*gib)) })
	waitVisible(t, db, "uuid-c")
	// Queued behind it: d (4 GiB) fits on h2 only if c is not there, so
	// it is refused while c is on its way; e (2 GiB) fits either way.
	var dErr error
	_, dErr = db.Update(context.Background(), func(tx *state.Tx) error { put(tx, vm("d", "h2", 6*gib)); return nil })
	if dErr == nil {
		t.Fatal("d was placed over c's memory on its way")
	}
	second := updateAsync(db, func(tx *state.Tx) { put(tx, vm("e", "h2", 2*gib)) })
	waitVisible(t, db, "uuid-e")
	g.gate <- errors.New("boom")
	if r := <-first; r.err == nil || r.err.Error() != "boom" {
		t.Fatalf("first: %v, want boom", r.err)
	}
	g.gate <- nil // e, checked again and sent alone
	if r := <-second; r.err != nil {
		t.Fatalf("e: %v", r.err)
	}
	db.View(func(tx *state.Tx) {
		if tx.Vm("uuid-c") != nil {
			t.Error("the failed commit's VM is still there")
		}
		if got := tx.MemoryUsed("uuid-h2"); got != 2*gib {
			t.Errorf("h2 uses %d, want 2 GiB", got)
		}
	})
	db2 := state.NewDB(st)
	if err := db2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	db2.View(func(tx *state.Tx) {
		if tx.Vm("uuid-c") != nil || tx.Vm("uuid-e") == nil {
			t.Errorf("stored c=%v e=%v", tx.Vm("uuid-c"), tx.Vm("uuid-e"))
		}
	})
}

func TestUndoRestoresTheArrivalsAFailedCommitEnded(t *testing.T) {
	db, g, _ := gatedDB(t)
	arr := db.Arrive("uuid-b", "uuid-h3", 2*gib)
	first := updateAsync(db, func(tx *state.Tx) { put(tx, vm("b", "h3", 2*gib)) })
	waitVisible(t, db, "uuid-b")
	for db.Reserved("uuid-h3") != 0 {
		time.Sleep(time.Millisecond)
	}
	g.gate <- errors.New("boom")
	if r := <-first; r.err == nil {
		t.Fatal("the commit succeeded")
	}
	if got := db.MemoryTaken("uuid-h3"); got != 2*gib {
		t.Errorf("h3 holds %d after the failed arrival, want the 2 GiB still held for b", got)
	}
	db.Depart(arr)
	if got := db.MemoryTaken("uuid-h3"); got != 0 {
		t.Errorf("h3 holds %d after Depart", got)
	}
}

func TestCommitOnAKeyInFlightWaitsForIt(t *testing.T) {
	db, g, _ := gatedDB(t)
	var rev int64
	db.View(func(tx *state.Tx) { rev = tx.Rev(state.VmKey("uuid-a")) })
	desc := func(d string) func(tx *state.Tx) {
		return func(tx *state.Tx) {
			tx.Put(state.VmKey("uuid-a"), edit(vm("a", "h1", 4*gib), func(v *acliv1.Vm) { v.Description = d }), rev)
		}
	}
	first := updateAsync(db, desc("1"))
	waitDesc := func(want string) {
		for {
			var d string
			db.View(func(tx *state.Tx) { d = tx.Vm("uuid-a").Description })
			if d == want {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitDesc("1")
	var wg sync.WaitGroup
	wg.Add(1)
	var err2 error
	go func() {
		defer wg.Done()
		_, err2 = db.Update(context.Background(), func(tx *state.Tx) error { desc("2")(tx); return nil })
	}()
	g.gate <- nil
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	g.gate <- nil // the second, checked again on the real revision
	wg.Wait()
	if !store.IsConflict(err2) {
		t.Fatalf("second write at the same stale revision: %v, want a conflict", err2)
	}
	waitDesc("1")
}

func TestAConflictFailsOnlyTheCommitThatStagedIt(t *testing.T) {
	db, g, st := gatedDB(t)
	var hostRev int64
	db.View(func(tx *state.Tx) { hostRev = tx.Rev(state.HostKey("uuid-h3")) })
	first := updateAsync(db, func(tx *state.Tx) { put(tx, vm("first", "", gib)) })
	waitVisible(t, db, "uuid-first")
	// Batched together behind it: a host edit at a stale revision and an
	// unrelated VM deletion.
	stale := updateAsync(db, func(tx *state.Tx) {
		tx.Put(state.HostKey("uuid-h3"), host("h3", "127.41.0.3", func(h *acliv1.Host) { h.Schedulable = false }), hostRev-1)
	})
	for {
		var s bool
		db.View(func(tx *state.Tx) { s = tx.Host("uuid-h3").Schedulable })
		if !s {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var bRev int64
	db.View(func(tx *state.Tx) { bRev = tx.Rev(state.VmKey("uuid-b")) })
	deleted := updateAsync(db, func(tx *state.Tx) { tx.Delete(state.VmKey("uuid-b"), bRev) })
	for {
		var gone bool
		db.View(func(tx *state.Tx) { gone = tx.Vm("uuid-b") == nil })
		if gone {
			break
		}
		time.Sleep(time.Millisecond)
	}
	g.gate <- nil // the first
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	g.gate <- nil // the stale edit and the deletion: the store refuses the edit's compare
	r := <-stale
	var ce *store.ConflictError
	if !errors.As(r.err, &ce) || len(ce.Mismatches) != 1 || ce.Mismatches[0].Key != state.HostKey("uuid-h3") {
		t.Fatalf("stale edit: %v, want a conflict on h3 alone", r.err)
	}
	select {
	case r := <-deleted:
		t.Fatalf("the deletion batched with the stale edit ended without being resent: %v", r.err)
	case g.gate <- nil: // the deletion, resent alone
	}
	if r := <-deleted; r.err != nil {
		t.Fatalf("the resent deletion: %v", r.err)
	}
	db2 := state.NewDB(st)
	if err := db2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	db2.View(func(tx *state.Tx) {
		if tx.Vm("uuid-b") != nil {
			t.Error("b is still stored")
		}
		if !tx.Host("uuid-h3").Schedulable {
			t.Error("the stale edit was stored")
		}
	})
	db.View(func(tx *state.Tx) {
		if !tx.Host("uuid-h3").Schedulable {
			t.Error("the stale edit is still applied")
		}
	})
}

// A record read while its commit is in flight is flagged, and a write that
// compares against what was read commits once that commit is durable.
func TestAWriteOnAProvisionalReadComparesWithItsDurableRevision(t *testing.T) {
	for _, fails := range []bool{false, true} {
		t.Run(fmt.Sprintf("fails=%v", fails), func(t *testing.T) {
			db, g, st := gatedDB(t)
			first := updateAsync(db, func(tx *state.Tx) { put(tx, vm("c", "", gib)) })
			waitVisible(t, db, "uuid-c")
			var rev int64
			var v *acliv1.Vm
			db.View(func(tx *state.Tx) { v, rev = tx.Vm("uuid-c"), tx.Rev(state.VmKey("uuid-c")) })
			if !state.Pending(rev) {
				t.Fatalf("revision %d of a record not yet durable, want a pending token", rev)
			}
			second := updateAsync(db, func(tx *state.Tx) {
				tx.Put(state.VmKey("uuid-c"), edit(v, func(v *acliv1.Vm) { v.Description = "edited" }), rev)
			})
			if fails {
				g.gate <- errors.New("boom")
			} else {
				g.gate <- nil
			}
			if r := <-first; (r.err != nil) != fails {
				t.Fatalf("first: %v", r.err)
			}
			if fails {
				r := <-second
				if !store.IsConflict(r.err) {
					t.Fatalf("an edit of a record whose commit failed: %v, want a conflict", r.err)
				}
				return
			}
			g.gate <- nil
			r := <-second
			if r.err != nil {
				t.Fatalf("edit at what was read: %v", r.err)
			}
			db2 := state.NewDB(st)
			if err := db2.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			db2.View(func(tx *state.Tx) {
				if d := tx.Vm("uuid-c").GetDescription(); d != "edited" {
					t.Errorf("stored description %q", d)
				}
				if got := tx.Rev(state.VmKey("uuid-c")); got != r.rev {
					t.Errorf("stored revision %d, want %d", got, r.rev)
				}
			})
		})
	}
}

// A revision handed to a client is the store's: ViewDurable waits for the
// commit in flight on its key.
func TestViewDurableWaitsForTheCommitInFlight(t *testing.T) {
	db, g, _ := gatedDB(t)
	first := updateAsync(db, func(tx *state.Tx) { put(tx, vm("c", "", gib)) })
	waitVisible(t, db, "uuid-c")
	read := make(chan int64, 1)
	go func() {
		_ = db.ViewDurable(context.Background(), state.VmKey("uuid-c"), func(tx *state.Tx) { read <- tx.Rev(state.VmKey("uuid-c")) })
	}()
	select {
	case rev := <-read:
		t.Fatalf("read revision %d while the commit was in flight", rev)
	case g.gate <- nil:
	}
	r := <-first
	if rev := <-read; r.err != nil || rev != r.rev {
		t.Fatalf("read revision %d, want %d (%v)", rev, r.rev, r.err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	second := updateAsync(db, func(tx *state.Tx) { put(tx, vm("c", "h2", gib)) })
	for {
		var on string
		db.View(func(tx *state.Tx) { on = tx.Vm("uuid-c").HostUuid })
		if on != "" {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := db.ViewDurable(ctx, state.VmKey("uuid-c"), func(*state.Tx) { t.Error("read a provisional record") }); err != context.Canceled {
		t.Errorf("ViewDurable after its context ended: %v", err)
	}
	g.gate <- nil
	<-second
}
