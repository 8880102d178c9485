package manager

import (
	"cmp"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Container capacity is a rule checked where records are committed, like
// the redundancy budget: a commit that grows a container's use past its
// capacity is refused, whatever request or task made it, and commits that
// grow use are serialised so two cannot both fit the last free bytes.

type vdiskUse struct {
	container string
	bytes     int64
	image     bool
}

// storageUse is the container space a record holds.
func storageUse(msg proto.Message) []vdiskUse {
	var out []vdiskUse
	vm := func(v *acliv1.Vm) {
		for _, d := range v.GetDisks() {
			if hasData(d) {
				out = append(out, vdiskUse{container: cmp.Or(d.Container, defaultContainer), bytes: d.SizeBytes})
			}
		}
	}
	switch r := msg.(type) {
	case *acliv1.Vm:
		vm(r)
	case *acliv1.Snapshot:
		vm(r.Vm)
	case *acliv1.Image:
		out = append(out, vdiskUse{container: cmp.Or(r.Container, defaultContainer), bytes: r.SizeBytes, image: true})
	case *acliv1.VolumeGroup:
		for _, d := range r.Disks {
			out = append(out, vdiskUse{container: cmp.Or(d.Container, defaultContainer), bytes: d.SizeBytes})
		}
	}
	return out
}

// committedLocked is the record a key holds in the model now.
func (m *Manager) committedLocked(key string) proto.Message {
	switch {
	case strings.HasPrefix(key, vmPrefix):
		if r := m.vms[strings.TrimPrefix(key, vmPrefix)]; r != nil {
			return r.pb
		}
	case strings.HasPrefix(key, imagePrefix):
		if r := m.imgs.images[strings.TrimPrefix(key, imagePrefix)]; r != nil {
			return r.pb
		}
	case strings.HasPrefix(key, snapPrefix):
		if r := m.stor.snaps[strings.TrimPrefix(key, snapPrefix)]; r != nil {
			return r.pb
		}
	case strings.HasPrefix(key, vgPrefix):
		if r := m.vgs.byUUID[strings.TrimPrefix(key, vgPrefix)]; r != nil {
			return r.pb
		}
	}
	return nil
}

// storageGrowthLocked is how many bytes the writes add to each container.
func (m *Manager) storageGrowthLocked(ws []write) map[string]int64 {
	var grow map[string]int64
	for _, w := range ws {
		add := storageUse(w.msg)
		del := storageUse(m.committedLocked(w.key))
		if len(add) == 0 && len(del) == 0 {
			continue
		}
		if grow == nil {
			grow = map[string]int64{}
		}
		for _, u := range add {
			grow[u.container] += u.bytes
		}
		for _, u := range del {
			grow[u.container] -= u.bytes
		}
	}
	for c, n := range grow {
		if n <= 0 {
			delete(grow, c)
		}
	}
	return grow
}

// checkStorageCommit is called, without Manager.mu, before a task's
// outcome is committed. When the
// writes grow a container it takes storageCommitMu, checks the capacity
// against the committed records, and returns done, which applies the
// records to the model once they are committed (so the next check sees
// them) and unlocks.
func (m *Manager) checkStorageCommit(ws []write) (done func(rev int64, err error), err error) {
	m.mu.RLock()
	grows := len(m.storageGrowthLocked(ws)) > 0
	m.mu.RUnlock()
	if !grows {
		return nil, nil
	}
	m.storageCommitMu.Lock()
	m.mu.RLock()
	for c, n := range m.storageGrowthLocked(ws) {
		if err = m.checkCapacityLocked(c, n, "the change"); err != nil {
			break
		}
	}
	m.mu.RUnlock()
	if err != nil {
		m.storageCommitMu.Unlock()
		return nil, err
	}
	return func(rev int64, err error) {
		defer m.storageCommitMu.Unlock()
		if err != nil {
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, w := range ws {
			switch r := w.msg.(type) {
			case *acliv1.Vm:
				m.putVmLocked(r, rev)
			case *acliv1.Image:
				m.putImageLocked(r, rev)
			case *acliv1.Snapshot:
				m.putSnapLocked(r, rev)
			case *acliv1.VolumeGroup:
				m.putVgLocked(r, rev)
			}
		}
	}, nil
}
