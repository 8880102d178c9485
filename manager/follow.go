package manager

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/vmgroup"
)

// Follow applies changes another manager committed to a read-only
// manager (Config.ReadOnly), in commit order: a follower's read view
// follows the store's revisions this way instead of being built again.
func (m *Manager) Follow(evs []store.Event) error {
	if !m.readOnly {
		return errors.New("manager: Follow is for read-only managers")
	}
	if err := m.db.Follow(evs); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range evs {
		if err := m.followLocked(ev); err != nil {
			return err
		}
	}
	return nil
}

// followLocked keeps the records the root still indexes beside the DB.
func (m *Manager) followLocked(ev store.Event) error {
	key := ev.KV.Key
	decode := func(msg proto.Message) error {
		if err := proto.Unmarshal(ev.KV.Value, msg); err != nil {
			return fmt.Errorf("following %s: %w", key, err)
		}
		return nil
	}
	switch {
	case strings.HasPrefix(key, vmgroup.Prefix):
		if ev.Delete {
			m.ops.groups.Delete(strings.TrimPrefix(key, vmgroup.Prefix))
			return nil
		}
		g := &acliv1.VmGroup{}
		if err := decode(g); err != nil {
			return err
		}
		m.ops.groups.Put(g, ev.KV.ModRev)
	}
	return nil
}
