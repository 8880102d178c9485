package hostsync

import (
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// A report read before the VM last changed through clusterd is stale; one
// read at or after it, or at an unknown time, is not. A later settle wins
// over an earlier one, and a VM no longer recorded is forgotten.
func TestSettledStaleness(t *testing.T) {
	db := driftDB(t, vmOn("web", "h1", acliv1.PowerState_kOn))
	s := &Settled{DB: db}
	t0 := time.Unix(1000, 0)
	if s.Stale("uuid-web", t0) {
		t.Fatal("stale before anything settled")
	}
	s.Settle("uuid-web", t0)
	s.Settle("uuid-web", t0.Add(-time.Second)) // an older change does not set it back
	for _, c := range []struct {
		at    time.Time
		stale bool
	}{{t0.Add(-time.Millisecond), true}, {t0, false}, {t0.Add(time.Millisecond), false}, {time.Time{}, false}} {
		if got := s.Stale("uuid-web", c.at); got != c.stale {
			t.Errorf("report read at %v: stale %v, want %v", c.at, got, c.stale)
		}
	}
	s.Settle("uuid-gone", t0)
	if s.Stale("uuid-gone", t0.Add(-time.Second)) || len(s.at) != 1 {
		t.Errorf("a VM not recorded was kept: %v", s.at)
	}
}
