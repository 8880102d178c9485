package state_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

func TestHoldsAreTakenAndLetGoWithTheirCommit(t *testing.T) {
	bg := context.Background()
	db := newDB(t)
	// Taken alone: at once.
	if _, err := db.Update(bg, func(tx *state.Tx) error { tx.Take("t1", "uuid-a"); return nil }); err != nil {
		t.Fatal(err)
	}
	if h := db.Holder("uuid-a"); h != "t1" {
		t.Fatalf("holder %q, want t1", h)
	}
	// Another task's start that takes it is refused whole.
	_, err := db.Update(bg, func(tx *state.Tx) error {
		put(tx, vm("c", "", gib))
		tx.Take("t2", "uuid-c", "uuid-a")
		return nil
	})
	var ve *state.ViolationError
	if !errors.As(err, &ve) || len(ve.Violations) != 1 || ve.Violations[0].Rule != state.RuleBusy || ve.Violations[0].Subject != "uuid-a" {
		t.Fatalf("t2 taking a: %v, want one BUSY violation on a", err)
	}
	db.View(func(tx *state.Tx) {
		if tx.Vm("uuid-c") != nil || tx.Holder("uuid-c") != "" {
			t.Error("the refused commit left its VM or its hold")
		}
	})
	// Taking again what it holds is a no-op; a hold let go in a
	// transaction is free once it is durable.
	if _, err := db.Update(bg, func(tx *state.Tx) error {
		tx.Take("t1", "uuid-a")
		put(tx, vm("d", "", gib))
		tx.LetGo("t1", "uuid-a")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(bg, func(tx *state.Tx) error {
		tx.Take("t2", "uuid-a")
		if h := tx.Holder("uuid-a"); h != "t2" {
			t.Errorf("holder in the transaction %q, want t2", h)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if h := db.HeldBy("t2"); len(h) != 1 || h[0] != "uuid-a" {
		t.Errorf("t2 holds %v", h)
	}
	// Letting go of what another task holds does nothing.
	if _, err := db.Update(bg, func(tx *state.Tx) error { tx.LetGo("t1", "uuid-a"); return nil }); err != nil {
		t.Fatal(err)
	}
	if h := db.Holder("uuid-a"); h != "t2" {
		t.Errorf("holder %q after t1 let go, want t2", h)
	}
}

// A task's end that fails in the store leaves it holding its entities, and
// a start that fails leaves them free.
func TestHoldsOfAFailedTransactionAreUndone(t *testing.T) {
	db, g, _ := gatedDB(t)
	start := updateAsync(db, func(tx *state.Tx) { put(tx, vm("c", "", gib)); tx.Take("t1", "uuid-c") })
	waitVisible(t, db, "uuid-c")
	if h := db.Holder("uuid-c"); h != "t1" {
		t.Fatalf("holder %q while the start is in flight, want t1", h)
	}
	g.gate <- errors.New("boom")
	if r := <-start; r.err == nil {
		t.Fatal("the start succeeded")
	}
	if h := db.Holder("uuid-c"); h != "" {
		t.Fatalf("holder %q after the start failed, want none", h)
	}
	if _, err := db.Update(context.Background(), func(tx *state.Tx) error { tx.Take("t1", "uuid-a"); return nil }); err != nil {
		t.Fatal(err)
	}
	end := updateAsync(db, func(tx *state.Tx) { put(tx, vm("e", "", gib)); tx.LetGo("t1", "uuid-a") })
	waitVisible(t, db, "uuid-e")
	if h := db.Holder("uuid-a"); h != "t1" {
		t.Fatalf("holder %q while the end is in flight, want t1 still", h)
	}
	g.gate <- errors.New("boom")
	if r := <-end; r.err == nil {
		t.Fatal("the end succeeded")
	}
	if h := db.Holder("uuid-a"); h != "t1" {
		t.Fatalf("holder %q after the end failed, want t1 still", h)
	}
	end = updateAsync(db, func(tx *state.Tx) { put(tx, vm("e", "", gib)); tx.LetGo("t1", "uuid-a") })
	waitVisible(t, db, "uuid-e")
	g.gate <- nil
	if r := <-end; r.err != nil {
		t.Fatal(r.err)
	}
	if h := db.Holder("uuid-a"); h != "" {
		t.Fatalf("holder %q after the end is durable, want none", h)
	}
}

// takeAlone takes ids for task in a commit of holds only (what a running
// task takes), answering the task in the way ("" when taken).
func takeAlone(t *testing.T, db *state.DB, task string, ids ...string) string {
	t.Helper()
	_, err := db.Update(context.Background(), func(tx *state.Tx) error { tx.Take(task, ids...); return nil })
	if _, h, ok := state.Busy(err); ok {
		return h
	}
	if err != nil {
		t.Fatal(err)
	}
	return ""
}

func TestHoldsOnlyCommitIsAllOrNone(t *testing.T) {
	db := newDB(t)
	if h := takeAlone(t, db, "t1", "x", "y"); h != "" {
		t.Fatalf("held by %q", h)
	}
	if h := takeAlone(t, db, "t2", "z", "y"); h != "t1" {
		t.Fatalf("t2 taking y: held by %q, want t1", h)
	}
	if h := db.Holder("z"); h != "" {
		t.Errorf("z taken by %q though y was refused", h)
	}
	_, err := db.Update(context.Background(), func(tx *state.Tx) error { put(tx, vm("c", "", gib)); tx.Take("t2", "x"); return nil })
	if !errors.As(err, new(*state.ViolationError)) {
		t.Errorf("a commit taking what another took: %v, want BUSY", err)
	}
	db.LetGoNow("t2", "x")
	db.LetGoNow("t1", "x")
	if got := db.HeldBy("t1"); len(got) != 1 || got[0] != "y" {
		t.Errorf("t1 holds %v, want [y]", got)
	}
}

// A task starts on the records its request read: a commit over one in
// between refuses its start (RuleChanged); a revision read while its
// commit was in flight still matches once that commit lands, and not
// once it failed.
func TestStartRefusedWhenWhatItReadChanged(t *testing.T) {
	bg := context.Background()
	db, g, _ := gatedDB(t)
	start := func(seen state.Seen) error {
		_, err := db.Update(bg, func(tx *state.Tx) error {
			if err := tx.Unchanged(seen); err != nil {
				return err
			}
			tx.Take("t1", "uuid-b")
			return nil
		})
		if err == nil {
			db.LetGoNow("t1", "uuid-b")
		}
		return err
	}
	seenB := func() (s state.Seen) {
		db.View(func(tx *state.Tx) { s = tx.Seen("uuid-b", "uuid-h1", "mac:x") })
		return s
	}
	seen := seenB()
	if len(seen) != 1 {
		t.Fatalf("seen %v: want b's revision only (hosts and claims have none)", seen)
	}
	if err := start(seen); err != nil {
		t.Fatalf("start on what it read: %v", err)
	}
	// Read in flight, landed: the same record.
	var b *acliv1.Vm
	db.View(func(tx *state.Tx) { b = tx.Vm("uuid-b") })
	done := updateAsync(db, func(tx *state.Tx) {
		tx.Put(state.VmKey("uuid-b"), edit(b, func(v *acliv1.Vm) { v.NumVcpus = 2 }), state.AnyRev)
	})
	waitFor(t, func() bool { return !sameRevs(seen, seenB()) })
	inFlight := seenB()
	g.gate <- nil
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}
	if err := start(inFlight); err != nil {
		t.Fatalf("start on a revision read in flight, since landed: %v", err)
	}
	// Changed since read.
	if err := start(seen); !isRule(err, state.RuleChanged) {
		t.Fatalf("start on a record changed since: %v, want %s", err, state.RuleChanged)
	}
	// Read in flight, failed.
	seen = seenB()
	done = updateAsync(db, func(tx *state.Tx) {
		tx.Put(state.VmKey("uuid-b"), edit(b, func(v *acliv1.Vm) { v.NumVcpus = 3 }), state.AnyRev)
	})
	waitFor(t, func() bool { return !sameRevs(seen, seenB()) })
	inFlight = seenB()
	g.gate <- errors.New("boom")
	if r := <-done; r.err == nil {
		t.Fatal("the change succeeded")
	}
	if err := start(inFlight); !isRule(err, state.RuleChanged) {
		t.Fatalf("start on a write that failed: %v, want %s", err, state.RuleChanged)
	}
	if err := start(seen); err != nil {
		t.Fatalf("start on the record as it stayed: %v", err)
	}
	// Gone since read.
	seen = seenB()
	done = updateAsync(db, func(tx *state.Tx) { tx.Delete(state.VmKey("uuid-b"), state.AnyRev) })
	g.gate <- nil
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}
	if err := start(seen); !isRule(err, state.RuleChanged) {
		t.Fatalf("start on a deleted record: %v, want %s", err, state.RuleChanged)
	}
}

func TestBusyNamesTheHolder(t *testing.T) {
	db := newDB(t)
	if h := takeAlone(t, db, "t1", "uuid-a"); h != "" {
		t.Fatal(h)
	}
	_, err := db.Update(context.Background(), func(tx *state.Tx) error { tx.Take("t2", "uuid-b", "uuid-a"); return nil })
	if id, task, ok := state.Busy(err); !ok || id != "uuid-a" || task != "t1" {
		t.Fatalf("Busy(%v) = %q, %q, %v; want uuid-a held by t1", err, id, task, ok)
	}
	if _, _, ok := state.Busy(errors.New("other")); ok {
		t.Error("Busy of an unrelated error")
	}
}

func isRule(err error, rule string) bool {
	var ve *state.ViolationError
	return errors.As(err, &ve) && len(ve.Violations) > 0 && ve.Violations[0].Rule == rule
}

func sameRevs(a, b state.Seen) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// Read holds: any number of tasks read an entity at once (a clone's
// source), none changes it while they do, and none reads it while one
// changes it; each is let go with its task's end, and one whose start is
// refused is never taken.
func TestReadHolds(t *testing.T) {
	bg := context.Background()
	db := newDB(t)
	take := func(task string, keys ...string) error {
		_, err := db.Update(bg, func(tx *state.Tx) error { tx.Take(task, keys...); return nil })
		return err
	}
	busy := func(err error, id, holder string) {
		t.Helper()
		if gotID, gotHolder, ok := state.Busy(err); !ok || gotID != id || gotHolder != holder {
			t.Fatalf("got %v, want %s busy with %s", err, id, holder)
		}
	}
	// Two readers at once.
	if err := take("r1", state.Read("uuid-a")); err != nil {
		t.Fatal(err)
	}
	if err := take("r2", state.Read("uuid-a")); err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	if got := db.Readers("uuid-a"); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Fatalf("readers %v, want [r1 r2]", got)
	}
	if h := db.Holder("uuid-a"); h != "" {
		t.Fatalf("a reader is the holder %q", h)
	}
	// A writer is refused while they read, in a commit and outside one,
	// and its whole start with it (nothing of it is taken).
	_, err := db.Update(bg, func(tx *state.Tx) error {
		put(tx, vm("c", "", gib))
		tx.Take("w", "uuid-c", "uuid-a")
		return nil
	})
	busy(err, "uuid-a", "r1")
	if h := db.Holder("uuid-c"); h != "" {
		t.Fatalf("the refused start left c held by %q", h)
	}
	if h := takeAlone(t, db, "w", "uuid-a"); h != "r1" {
		t.Fatalf("a take while read: held by %q, want r1", h)
	}
	// A reader may change what it reads itself only once alone.
	busy(take("r1", "uuid-a"), "uuid-a", "r2")
	// The first reader's end lets go of its read: the second still refuses
	// the writer.
	if _, err := db.Update(bg, func(tx *state.Tx) error {
		put(tx, vm("d", "", gib))
		tx.LetGo("r1", state.Read("uuid-a"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	busy(take("w", "uuid-a"), "uuid-a", "r2")
	db.LetGoNow("r2", state.Read("uuid-a"))
	if got := db.Readers("uuid-a"); len(got) != 0 {
		t.Fatalf("readers %v after both ended", got)
	}
	// Written: a reader is refused, and its refused start reads nothing.
	if err := take("w", "uuid-a"); err != nil {
		t.Fatalf("the writer once no one reads: %v", err)
	}
	_, err = db.Update(bg, func(tx *state.Tx) error {
		tx.Take("r3", "uuid-b", state.Read("uuid-b2"), state.Read("uuid-a"))
		return nil
	})
	busy(err, "uuid-a", "w")
	if got := db.HeldBy("r3"); len(got) != 0 {
		t.Fatalf("the refused reader holds %v", got)
	}
	if h := takeAlone(t, db, "r3", state.Read("uuid-a")); h != "w" {
		t.Fatalf("a read while written: held by %q, want w", h)
	}
	// The writer may read what it holds.
	if err := take("w", state.Read("uuid-a")); err != nil {
		t.Fatalf("the holder reading: %v", err)
	}
	if got := db.HeldBy("w"); !slices.Equal(got, []string{state.Read("uuid-a"), "uuid-a"}) {
		t.Fatalf("w holds %v", got)
	}
}

// A start whose commit fails in the store reads nothing after; an end
// that fails leaves the task reading.
func TestReadHoldsOfAFailedTransactionAreUndone(t *testing.T) {
	db, g, _ := gatedDB(t)
	start := updateAsync(db, func(tx *state.Tx) { put(tx, vm("c", "", gib)); tx.Take("r1", state.Read("uuid-a")) })
	waitVisible(t, db, "uuid-c")
	if got := db.Readers("uuid-a"); !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("readers %v while the start is in flight, want [r1]", got)
	}
	g.gate <- errors.New("boom")
	if r := <-start; r.err == nil {
		t.Fatal("the start succeeded")
	}
	if got := db.Readers("uuid-a"); len(got) != 0 {
		t.Fatalf("readers %v after the start failed", got)
	}
	if h := takeAlone(t, db, "r1", state.Read("uuid-a")); h != "" {
		t.Fatal(h)
	}
	end := updateAsync(db, func(tx *state.Tx) { put(tx, vm("e", "", gib)); tx.LetGo("r1", state.Read("uuid-a")) })
	waitVisible(t, db, "uuid-e")
	g.gate <- errors.New("boom")
	if r := <-end; r.err == nil {
		t.Fatal("the end succeeded")
	}
	if got := db.Readers("uuid-a"); !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("readers %v after the end failed, want [r1]", got)
	}
}
