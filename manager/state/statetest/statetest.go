// Package statetest opens state DBs for the feature packages' tests.
package statetest

import (
	"context"
	"testing"

	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

// Open is an empty state DB on a bolt store in a test directory, closed
// when the test ends.
func Open(t testing.TB) *state.DB {
	t.Helper()
	db, _ := OpenDir(t, t.TempDir())
	return db
}

// OpenDir is a state DB on the bolt store in dir, loaded, with its store
// (for a test that restarts over it), closed when the test ends unless the
// test closed it first.
func OpenDir(t testing.TB, dir string) (*state.DB, store.Store) {
	t.Helper()
	st, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db := state.NewDB(st)
	if err := db.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, st
}
