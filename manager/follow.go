package manager

import (
	"errors"

	"github.com/acli-dev/acli/manager/store"
)

// Follow applies changes another manager committed to a read-only
// manager (Config.ReadOnly), in commit order: a follower's read view
// follows the store's revisions this way instead of being built again.
// Every record a read answers from is in the DB.
func (m *Manager) Follow(evs []store.Event) error {
	if !m.readOnly {
		return errors.New("manager: Follow is for read-only managers")
	}
	return m.db.Follow(evs)
}
