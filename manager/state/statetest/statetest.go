// Package statetest opens state DBs for the feature packages' tests.
package statetest

import (
	"testing"

	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store/bolt"
)

// Open is an empty state DB on a bolt store in a test directory, closed
// when the test ends.
func Open(t testing.TB) *state.DB {
	t.Helper()
	st, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return state.NewDB(st)
}
