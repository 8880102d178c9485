package hostsync

import (
	"sync"
	"time"

	"github.com/acli-dev/acli/manager/state"
)

// Settled is when each VM last changed through clusterd: a task let go of
// it, or a host report was applied to it. A host report read before then
// is stale for the VM (Reconciler): the driver reads a host some time
// before the report is applied. It has its own lock, so it may be asked
// inside a state.DB View.
type Settled struct {
	DB *state.DB // a VM no longer recorded is forgotten

	mu sync.Mutex
	at map[string]time.Time
}

// Settle records that vm changed through clusterd at at (kept if later
// than what is known).
func (s *Settled) Settle(vm string, at time.Time) {
	var gone bool
	s.DB.View(func(tx *state.Tx) { gone = tx.Vm(vm) == nil })
	s.mu.Lock()
	defer s.mu.Unlock()
	if gone {
		delete(s.at, vm)
		return
	}
	if s.at == nil {
		s.at = map[string]time.Time{}
	}
	if at.After(s.at[vm]) {
		s.at[vm] = at
	}
}

// Stale reports whether a host report read at at (zero: unknown, never
// stale) is older than vm's last change through clusterd. It opens no
// View.
func (s *Settled) Stale(vm string, at time.Time) bool {
	if at.IsZero() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return at.Before(s.at[vm])
}
