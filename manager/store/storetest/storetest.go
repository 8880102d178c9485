// Package storetest is the conformance suite every store.Store backend must
// pass: revisions, compare-on-revision conflicts, prefix listing, atomicity
// and concurrent writers.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/acli-dev/acli/manager/store"
)

// Open returns a fresh, empty store for one subtest; the suite closes it.
type Open func(t *testing.T) store.Store

// Run runs the conformance suite against the backend.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGetRevisions", testPutGetRevisions},
		{"ListPrefix", testListPrefix},
		{"Delete", testDelete},
		{"CompareConflict", testCompareConflict},
		{"CreateIfAbsent", testCreateIfAbsent},
		{"TxnAtomic", testTxnAtomic},
		{"ConcurrentCompareAndSwap", testConcurrentCAS},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
	// Stores several managers share also notify changes.
	probe := open(t)
	_, watches := probe.(store.Watcher)
	probe.Close()
	if !watches {
		return
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, store.Store, store.Watcher)
	}{
		{"WatchOrder", testWatchOrder},
		{"WatchFromRevision", testWatchFromRevision},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tc.fn(t, s, s.(store.Watcher))
		})
	}
}

var ctx = context.Background()

func mustPut(t *testing.T, s store.Store, k, v string) int64 {
	t.Helper()
	rev, err := store.Put(ctx, s, k, []byte(v))
	if err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
	return rev
}

func testGetMissing(t *testing.T, s store.Store) {
	if _, err := s.Get(ctx, "/nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get missing = %v, want ErrNotFound", err)
	}
	if rev, err := s.Revision(ctx); err != nil || rev != 0 {
		t.Fatalf("fresh store revision = %d, %v; want 0", rev, err)
	}
}

func testPutGetRevisions(t *testing.T, s store.Store) {
	r1 := mustPut(t, s, "/a", "1")
	r2 := mustPut(t, s, "/a", "2")
	if r2 <= r1 {
		t.Fatalf("revisions not increasing: %d then %d", r1, r2)
	}
	kv, err := s.Get(ctx, "/a")
	if err != nil {
		t.Fatal(err)
	}
	if string(kv.Value) != "2" || kv.ModRev != r2 || kv.CreateRev != r1 {
		t.Fatalf("got %q mod=%d create=%d; want \"2\" mod=%d create=%d", kv.Value, kv.ModRev, kv.CreateRev, r2, r1)
	}
	if rev, _ := s.Revision(ctx); rev != r2 {
		t.Fatalf("store revision %d, want %d", rev, r2)
	}
}

func testListPrefix(t *testing.T, s store.Store) {
	for _, k := range []string{"/vms/b", "/vms/a", "/vmsx", "/hosts/a", "/vms/c"} {
		mustPut(t, s, k, k)
	}
	kvs, err := s.List(ctx, "/vms/")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range kvs {
		got = append(got, kv.Key)
	}
	if fmt.Sprint(got) != "[/vms/a /vms/b /vms/c]" {
		t.Fatalf("List(/vms/) = %v", got)
	}
	if kvs, _ := s.List(ctx, "/none/"); len(kvs) != 0 {
		t.Fatalf("List of empty prefix = %v", kvs)
	}
}

func testDelete(t *testing.T, s store.Store) {
	mustPut(t, s, "/a", "1")
	if _, err := store.Delete(ctx, s, "/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "/a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete Get = %v", err)
	}
	if _, err := store.Delete(ctx, s, "/a"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
}

func testCompareConflict(t *testing.T, s store.Store) {
	r1 := mustPut(t, s, "/vm", "v1")
	r2, err := s.Txn(ctx, []store.Cond{{Key: "/vm", ModRev: r1}}, []store.Op{store.PutOp("/vm", []byte("v2"))})
	if err != nil {
		t.Fatalf("txn at current revision: %v", err)
	}
	// A writer still holding r1 is stale and must not overwrite v2.
	_, err = s.Txn(ctx, []store.Cond{{Key: "/vm", ModRev: r1}}, []store.Op{store.PutOp("/vm", []byte("stale"))})
	var ce *store.ConflictError
	if !errors.As(err, &ce) || len(ce.Mismatches) != 1 || ce.Mismatches[0].Actual != r2 || ce.Mismatches[0].Expected != r1 {
		t.Fatalf("stale txn = %v, want ConflictError naming revisions %d/%d", err, r1, r2)
	}
	if kv, _ := s.Get(ctx, "/vm"); string(kv.Value) != "v2" {
		t.Fatalf("stale write landed: %q", kv.Value)
	}
	if rev, _ := s.Revision(ctx); rev != r2 {
		t.Fatalf("failed txn moved the revision to %d", rev)
	}
}

func testCreateIfAbsent(t *testing.T, s store.Store) {
	create := func(v string) error {
		_, err := s.Txn(ctx, []store.Cond{{Key: "/u", ModRev: 0}}, []store.Op{store.PutOp("/u", []byte(v))})
		return err
	}
	if err := create("first"); err != nil {
		t.Fatal(err)
	}
	if err := create("second"); !store.IsConflict(err) {
		t.Fatalf("second create = %v, want conflict", err)
	}
	// After deletion, the key may be created again.
	store.Delete(ctx, s, "/u")
	if err := create("third"); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
}

func testTxnAtomic(t *testing.T, s store.Store) {
	mustPut(t, s, "/a", "a0")
	rb := mustPut(t, s, "/b", "b0")
	// One compare fails: none of the writes may land.
	_, err := s.Txn(ctx,
		[]store.Cond{{Key: "/b", ModRev: rb}, {Key: "/c", ModRev: 99}},
		[]store.Op{store.PutOp("/a", []byte("a1")), store.DeleteOp("/b"), store.PutOp("/new", []byte("n"))})
	if !store.IsConflict(err) {
		t.Fatalf("txn = %v, want conflict", err)
	}
	for k, want := range map[string]string{"/a": "a0", "/b": "b0"} {
		if kv, err := s.Get(ctx, k); err != nil || string(kv.Value) != want {
			t.Fatalf("%s = %q, %v after failed txn; want %q", k, kv.Value, err, want)
		}
	}
	if _, err := s.Get(ctx, "/new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("/new written by a failed txn")
	}
	// All succeed together, stamped with one revision.
	rev, err := s.Txn(ctx, []store.Cond{{Key: "/b", ModRev: rb}},
		[]store.Op{store.PutOp("/a", []byte("a1")), store.DeleteOp("/b"), store.PutOp("/new", []byte("n"))})
	if err != nil {
		t.Fatal(err)
	}
	ka, _ := s.Get(ctx, "/a")
	kn, _ := s.Get(ctx, "/new")
	if ka.ModRev != rev || kn.ModRev != rev {
		t.Fatalf("keys of one txn have revisions %d and %d, want %d", ka.ModRev, kn.ModRev, rev)
	}
}

// testConcurrentCAS runs many read-modify-write increments of one counter
// under compare-on-revision with retries: no increment may be lost.
func testConcurrentCAS(t *testing.T, s store.Store) {
	mustPut(t, s, "/n", "0")
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				for {
					kv, err := s.Get(ctx, "/n")
					if err != nil {
						errs <- err
						return
					}
					var n int
					fmt.Sscan(string(kv.Value), &n)
					_, err = s.Txn(ctx, []store.Cond{{Key: "/n", ModRev: kv.ModRev}},
						[]store.Op{store.PutOp("/n", []byte(fmt.Sprint(n+1)))})
					if err == nil {
						break
					}
					if !store.IsConflict(err) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	kv, _ := s.Get(ctx, "/n")
	if string(kv.Value) != fmt.Sprint(workers*each) {
		t.Fatalf("counter = %s, want %d (lost updates)", kv.Value, workers*each)
	}
}

func testClosed(t *testing.T, s store.Store) {
	mustPut(t, s, "/a", "1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, s, "/a", []byte("2")); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Get(ctx, "/a"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
}

// nextEvents reads watch responses until n events arrived.
func nextEvents(t *testing.T, ch <-chan store.WatchResponse, n int) []store.Event {
	t.Helper()
	var out []store.Event
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case wr, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed after %d of %d events", len(out), n)
			}
			if wr.Err != nil {
				t.Fatalf("watch: %v", wr.Err)
			}
			out = append(out, wr.Events...)
		case <-timeout:
			t.Fatalf("watch: %d of %d events after 10s", len(out), n)
		}
	}
	return out
}

func describe(evs []store.Event) string {
	var parts []string
	for _, e := range evs {
		if e.Delete {
			parts = append(parts, fmt.Sprintf("del %s@%d", e.KV.Key, e.KV.ModRev))
		} else {
			parts = append(parts, fmt.Sprintf("put %s=%s@%d", e.KV.Key, e.KV.Value, e.KV.ModRev))
		}
	}
	return fmt.Sprint(parts)
}

// testWatchOrder: puts, deletes and multi-key transactions under the prefix
// arrive in commit order with their revisions; other prefixes and failed
// transactions send nothing.
func testWatchOrder(t *testing.T, s store.Store, w store.Watcher) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start, _ := s.Revision(ctx)
	ch := w.Watch(wctx, "/vms/", start)
	r1 := mustPut(t, s, "/vms/a", "1")
	mustPut(t, s, "/hosts/h", "x")
	if _, err := s.Txn(ctx, []store.Cond{{Key: "/vms/a", ModRev: 999}}, []store.Op{store.PutOp("/vms/z", nil)}); !store.IsConflict(err) {
		t.Fatalf("txn = %v, want conflict", err)
	}
	r2, err := s.Txn(ctx, []store.Cond{{Key: "/vms/a", ModRev: r1}},
		[]store.Op{store.PutOp("/vms/b", []byte("2")), store.DeleteOp("/vms/a")})
	if err != nil {
		t.Fatal(err)
	}
	got := describe(nextEvents(t, ch, 3))
	want := fmt.Sprintf("[put /vms/a=1@%d put /vms/b=2@%d del /vms/a@%d]", r1, r2, r2)
	if got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	cancel()
	for range ch {
	}
}

// testWatchFromRevision: a watch started after a listing continues from the
// listing's revision without gap or repeat.
func testWatchFromRevision(t *testing.T, s store.Store, w store.Watcher) {
	mustPut(t, s, "/t/1", "a")
	at := mustPut(t, s, "/t/2", "b")
	r3 := mustPut(t, s, "/t/3", "c")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := describe(nextEvents(t, w.Watch(wctx, "/t/", at), 1))
	if want := fmt.Sprintf("[put /t/3=c@%d]", r3); got != want {
		t.Fatalf("events after %d: %s, want %s", at, got, want)
	}
}
