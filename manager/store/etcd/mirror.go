package etcd

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/acli-dev/acli/manager/store"
)

// Mirror is a manager's own copy of the model, fed by a watch, from which a
// follower serves reads. When the store cannot be reached or has lost its
// quorum the copy keeps the last state it saw and says it may be stale.
type Mirror struct {
	s *Store
	// skip are key prefixes whose changes do not count as changes of the
	// model (the event log, finished tasks): a reader waits for none of them.
	skip []string

	mu      sync.Mutex
	kvs     map[string]store.KV
	loaded  bool
	applied int64         // the copy holds every write up to this revision
	changed int64         // revision of the last write to a key not skipped
	stale   error         // why the copy may be behind the store (nil: following it)
	notify  chan struct{} // closed and replaced on every change
	// log holds the changes to keys not skipped after revision logFrom, in
	// order, so a reader of the copy can follow it change by change.
	log     []store.Event
	logFrom int64
}

// mirrorLog bounds the changes kept for Since.
const mirrorLog = 8192

// NewMirror returns a mirror of s's model; Run fills it. Changes to keys
// under a skip prefix are kept but do not count as model changes.
func NewMirror(s *Store, skip ...string) *Mirror {
	return &Mirror{s: s, skip: skip, kvs: map[string]store.KV{}, notify: make(chan struct{}),
		stale: errors.New("not loaded yet")}
}

// Run follows the store until ctx ends: a full listing, then a watch from
// its revision; when either fails the copy stays as it was, marked stale,
// and Run tries again after retry.
func (mi *Mirror) Run(ctx context.Context, retry time.Duration) {
	for ctx.Err() == nil {
		err := mi.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		mi.setStale(err)
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

func (mi *Mirror) follow(ctx context.Context) error {
	kvs, rev, err := mi.s.ListAt(ctx, "")
	if err != nil {
		mi.mu.Lock()
		loaded := mi.loaded
		mi.mu.Unlock()
		if !loaded {
			// A manager started while the store has no quorum answers
			// from what its member last saw.
			if old, serr := mi.s.ListStale(ctx, ""); serr == nil {
				mi.replace(old, 0, err)
			}
		}
		return err
	}
	mi.replace(kvs, rev, nil)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range mi.s.Watch(wctx, "", rev) {
		if wr.Err != nil {
			return wr.Err
		}
		mi.apply(wr)
	}
	return ctx.Err()
}

func (mi *Mirror) replace(kvs []store.KV, rev int64, stale error) {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	mi.kvs = make(map[string]store.KV, len(kvs))
	for _, kv := range kvs {
		mi.kvs[kv.Key] = kv
	}
	mi.loaded = true
	if rev > 0 {
		mi.applied = rev
	}
	mi.changed = mi.applied
	mi.stale = stale
	// A new listing may skip changes: a follower of the log starts again.
	mi.log, mi.logFrom = nil, mi.applied
	mi.wakeLocked()
}

func (mi *Mirror) apply(wr store.WatchResponse) {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	for _, ev := range wr.Events {
		if ev.Delete {
			delete(mi.kvs, ev.KV.Key)
		} else {
			mi.kvs[ev.KV.Key] = ev.KV
		}
		if !mi.skipped(ev.KV.Key) {
			mi.changed = max(mi.changed, ev.KV.ModRev)
			mi.log = append(mi.log, ev)
		}
		mi.applied = max(mi.applied, ev.KV.ModRev)
	}
	if n := len(mi.log); n > mirrorLog {
		// Drop the older half, whole revisions only.
		cut := n / 2
		for cut < n && mi.log[cut].KV.ModRev == mi.log[cut-1].KV.ModRev {
			cut++
		}
		mi.logFrom = mi.log[cut-1].KV.ModRev
		mi.log = append([]store.Event(nil), mi.log[cut:]...)
	}
	mi.stale = nil
	mi.wakeLocked()
}

// Since returns the changes to keys not skipped after revision rev, in
// order, and the revision the copy holds with them; ok is false when the
// copy no longer has them all (too old, or listed again since): the
// reader starts again from Snapshot.
func (mi *Mirror) Since(rev int64) (evs []store.Event, applied int64, ok bool) {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	if !mi.loaded || rev < mi.logFrom {
		return nil, mi.applied, false
	}
	i := sort.Search(len(mi.log), func(i int) bool { return mi.log[i].KV.ModRev > rev })
	return append([]store.Event(nil), mi.log[i:]...), mi.applied, true
}

func (mi *Mirror) skipped(key string) bool {
	for _, p := range mi.skip {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func (mi *Mirror) setStale(err error) {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	mi.stale = err
	mi.wakeLocked()
}

func (mi *Mirror) wakeLocked() {
	close(mi.notify)
	mi.notify = make(chan struct{})
}

// MirrorState is what the copy holds, at one instant.
type MirrorState struct {
	// Loaded: the copy has been filled at least once.
	Loaded bool
	// Applied is the revision up to which the copy holds every write;
	// Changed the last of them that changed the model.
	Applied, Changed int64
	// Stale says why the copy may be behind the store.
	Stale error
	// Notify is closed at the next change.
	Notify <-chan struct{}
}

// State returns the copy's revisions and health.
func (mi *Mirror) State() MirrorState {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	return MirrorState{Loaded: mi.loaded, Applied: mi.applied, Changed: mi.changed, Stale: mi.stale, Notify: mi.notify}
}

// Snapshot returns the copy as a read-only store (writes are refused with
// store.ErrNotLeader), leaving out keys under the skip prefixes, and the
// revision it holds.
func (mi *Mirror) Snapshot() (store.Store, int64) {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	out := make([]store.KV, 0, len(mi.kvs))
	for _, kv := range mi.kvs {
		if !mi.skipped(kv.Key) {
			out = append(out, kv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return &snapshot{kvs: out, rev: mi.changed}, mi.applied
}

// Barrier returns the revision of the last write the store committed to
// this namespace, read from a quorum: a copy that holds it is up to date.
func (mi *Mirror) Barrier(ctx context.Context) (int64, error) {
	return mi.s.Revision(ctx)
}

// snapshot is a frozen, sorted copy of the model.
type snapshot struct {
	kvs []store.KV
	rev int64
}

func (sn *snapshot) find(key string) int {
	return sort.Search(len(sn.kvs), func(i int) bool { return sn.kvs[i].Key >= key })
}

func (sn *snapshot) Get(_ context.Context, key string) (store.KV, error) {
	if i := sn.find(key); i < len(sn.kvs) && sn.kvs[i].Key == key {
		return sn.kvs[i], nil
	}
	return store.KV{}, store.ErrNotFound
}

func (sn *snapshot) List(_ context.Context, prefix string) ([]store.KV, error) {
	var out []store.KV
	for i := sn.find(prefix); i < len(sn.kvs) && strings.HasPrefix(sn.kvs[i].Key, prefix); i++ {
		out = append(out, sn.kvs[i])
	}
	return out, nil
}

func (sn *snapshot) Txn(context.Context, []store.Cond, []store.Op) (int64, error) {
	return 0, fmt.Errorf("%w: a follower's copy of the store is read-only", store.ErrNotLeader)
}

func (sn *snapshot) Revision(context.Context) (int64, error) { return sn.rev, nil }

func (sn *snapshot) Close() error { return nil }
