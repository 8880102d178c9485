// Package store defines the revisioned key-value store clusterd persists its
// model in. It is deliberately etcd-shaped so that an etcd backend can replace
// the embedded bbolt one (manager/store/bolt) without touching the model:
//
//   - the store has one revision counter; every committed transaction
//     increments it and stamps each key it writes with that revision (ModRev);
//   - a transaction is a list of compares on keys' revisions plus a list of
//     puts and deletes, applied all or nothing;
//   - a compare on a stale revision fails the whole transaction with a
//     *ConflictError — a write is never silently lost to a concurrent one.
//
// The conformance suite in manager/store/storetest checks any implementation.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is returned by Get for a missing key.
var ErrNotFound = errors.New("key not found")

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("store is closed")

// ErrNotLeader is returned by a write of a manager that does not hold the
// leadership (never won it, or lost it with its lease): nothing was written.
var ErrNotLeader = errors.New("this manager is not the leader")

// ErrUnavailable is returned when the store cannot be reached or has lost
// its quorum; the operation may or may not have been applied.
var ErrUnavailable = errors.New("store unavailable")

// KV is one stored key with its revisions.
type KV struct {
	Key   string
	Value []byte
	// CreateRev is the revision that created the key.
	CreateRev int64
	// ModRev is the revision of the last write to the key.
	ModRev int64
}

// Cond is a compare on one key's mod revision.
type Cond struct {
	Key string
	// ModRev is the expected mod revision; 0 means the key must not exist.
	ModRev int64
}

// Op is one write in a transaction.
type Op struct {
	Key   string
	Value []byte
	// Delete removes the key (Value is ignored); deleting a missing key is a no-op.
	Delete bool
}

// PutOp returns an Op that writes key.
func PutOp(key string, value []byte) Op { return Op{Key: key, Value: value} }

// DeleteOp returns an Op that removes key.
func DeleteOp(key string) Op { return Op{Key: key, Delete: true} }

// Store is the persistence interface of the cluster manager.
type Store interface {
	// Get returns one key or ErrNotFound.
	Get(ctx context.Context, key string) (KV, error)
	// List returns every key with the prefix, in key order.
	List(ctx context.Context, prefix string) ([]KV, error)
	// Txn checks every Cond and, if all hold, applies every Op atomically and
	// durably, returning the new store revision. A failed compare returns a
	// *ConflictError and changes nothing.
	Txn(ctx context.Context, conds []Cond, ops []Op) (int64, error)
	// Revision returns the current store revision.
	Revision(ctx context.Context) (int64, error)
	// Close releases the store; in-flight transactions finish first.
	Close() error
}

// Event is one change seen by a watch.
type Event struct {
	// KV is the key after the change; for a delete, its Value is nil and
	// ModRev is the revision of the delete.
	KV     KV
	Delete bool
}

// WatchResponse is a batch of events committed at revisions up to Rev.
// A response with Err set is the last one.
type WatchResponse struct {
	Events []Event
	Rev    int64
	Err    error
}

// Watcher is implemented by stores several managers share: a manager that
// does not write follows the others' changes.
type Watcher interface {
	// Watch sends every change to keys with the prefix committed after
	// revision after, in revision order, until ctx ends (then the channel
	// closes) or the history is gone (ErrCompacted, then the channel closes).
	Watch(ctx context.Context, prefix string, after int64) <-chan WatchResponse
}

// ErrCompacted says a watch asked for history the store no longer has: the
// watcher must reload with List and watch from the new revision.
var ErrCompacted = errors.New("store history compacted")

// Put writes one key unconditionally.
func Put(ctx context.Context, s Store, key string, value []byte) (int64, error) {
	return s.Txn(ctx, nil, []Op{PutOp(key, value)})
}

// Delete removes one key unconditionally.
func Delete(ctx context.Context, s Store, key string) (int64, error) {
	return s.Txn(ctx, nil, []Op{DeleteOp(key)})
}

// Mismatch is one failed compare.
type Mismatch struct {
	Key      string
	Expected int64
	// Actual is the key's mod revision now, 0 when it does not exist.
	Actual int64
}

// ConflictError is returned when a transaction's compare fails.
type ConflictError struct {
	Mismatches []Mismatch
}

func (e *ConflictError) Error() string {
	parts := make([]string, len(e.Mismatches))
	for i, m := range e.Mismatches {
		switch {
		case m.Expected < 0:
			// A pending token (manager/state): read while being committed.
			parts[i] = fmt.Sprintf("%s changed after it was read while being committed (revision %d now)", m.Key, m.Actual)
		case m.Expected == 0:
			parts[i] = fmt.Sprintf("%s already exists (revision %d)", m.Key, m.Actual)
		case m.Actual == 0:
			parts[i] = fmt.Sprintf("%s no longer exists (expected revision %d)", m.Key, m.Expected)
		default:
			parts[i] = fmt.Sprintf("%s is at revision %d, expected %d", m.Key, m.Actual, m.Expected)
		}
	}
	return "store conflict: " + strings.Join(parts, "; ")
}

// IsConflict reports whether err is a revision conflict.
func IsConflict(err error) bool {
	var c *ConflictError
	return errors.As(err, &c)
}
