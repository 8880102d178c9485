package manager

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/image"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
)

// vDisk copies: clones from images, vDisks, files and snapshots. Every
// copy is a volume of its own (manager/storage/volume: a sparse copy of the
// data extents), so deleting a source never strands a copy.

// storageState is guarded by Manager.mu, except paused (pauseMu).
type storageState struct {
	// readers are the running tasks copying from an entity (a VM, image,
	// snapshot or volume group): it cannot change or go while they read,
	// and any number of them may read at once.
	readers map[string][]*taskRec

	pauseMu sync.Mutex
	paused  map[string]*pauseRec
}

type pauseRec struct {
	n      int
	resume func() error
}

func (m *Manager) initStorage() {
	m.stor.readers = map[string][]*taskRec{}
	m.stor.paused = map[string]*pauseRec{}
}

// heldLocked is the task holding an entity: the one changing it, else the
// first one copying from it.
func (m *Manager) heldLocked(id string) *taskRec {
	if t := m.busy[id]; t != nil {
		return t
	}
	if rs := m.stor.readers[id]; len(rs) > 0 {
		return rs[0]
	}
	return nil
}

// readLocked marks ids as read by t until it ends.
func (m *Manager) readLocked(t *taskRec, ids ...string) {
	for _, id := range ids {
		m.stor.readers[id] = append(m.stor.readers[id], t)
	}
	prev := t.Release
	t.Release = func() {
		if prev != nil {
			prev()
		}
		for _, id := range ids {
			// A report read while a copy paused the VM is older news.
			if r := m.vms[id]; r != nil {
				r.settled = time.Now()
			}
			rs := slices.DeleteFunc(m.stor.readers[id], func(r *taskRec) bool { return r == t })
			if len(rs) == 0 {
				delete(m.stor.readers, id)
			} else {
				m.stor.readers[id] = rs
			}
		}
	}
}

// pauseVm pauses a running VM for a copy of its vDisks; pauses nest, the
// last release resumes it. A VM that is off, or a driver that cannot
// pause, needs nothing.
func (m *Manager) pauseVm(ctx context.Context, vm *acliv1.Vm) (release func(), err error) {
	p, ok := m.drv.(driver.Pauser)
	m.mu.RLock()
	var host *acliv1.Host
	if h := m.hosts[vm.HostUuid]; h != nil && vm.PowerState == acliv1.PowerState_kOn {
		host = h.pb
	}
	m.mu.RUnlock()
	if !ok || host == nil {
		return func() {}, nil
	}
	s := &m.stor
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	r := s.paused[vm.Uuid]
	if r == nil {
		resume, err := p.Pause(ctx, host, vm)
		if err != nil {
			return nil, fmt.Errorf("pause vm %s to copy its disks: %w", vm.Name, err)
		}
		r = &pauseRec{resume: resume}
		s.paused[vm.Uuid] = r
	}
	r.n++
	return func() {
		s.pauseMu.Lock()
		defer s.pauseMu.Unlock()
		if r.n--; r.n > 0 {
			return
		}
		delete(s.paused, vm.Uuid)
		if err := r.resume(); err != nil {
			m.log.Error("resuming a vm paused for a disk copy", "vm", vm.Uuid, "err", err)
		}
	}, nil
}

// vmdiskPath is where a vDisk lives in its container, the path
// clone_from_adsf_file takes.
func vmdiskPath(container, id string) string {
	return "/" + cmp.Or(container, defaultContainer) + "/vdisks/" + id
}

// cloneSrc is what a new vDisk copies: a vDisk volume, or a file.
type cloneSrc struct {
	container string
	vdisk     string // volume, or
	file      string // container path of a file
	size      int64
	what      string
	ref       *acliv1.EntityRef // the entity holding it, for the task
	lock      string            // entity read while copying
	vm        *acliv1.Vm        // paused while copying, when running
}

// vdiskLocked finds a vDisk by UUID among the VMs', snapshots', images'
// and volume groups'.
func (m *Manager) vdiskLocked(field, id string) (cloneSrc, error) {
	id = strings.ToLower(strings.TrimSpace(id))
	if _, err := uuid.Parse(id); err != nil {
		return cloneSrc{}, apierr.BadField(field, "%s=%q is not a vDisk UUID (vm.get <vm> include_vmdisk_paths=1 shows them)", field, id)
	}
	for _, r := range m.vmSorted {
		for _, d := range r.pb.Disks {
			if d.Uuid == id && state.HasData(d) {
				return cloneSrc{container: cmp.Or(d.Container, defaultContainer), vdisk: id, size: d.SizeBytes,
					what: "vDisk " + diskName(d) + " of vm " + r.pb.Name, ref: vmRef(r.pb), lock: r.pb.Uuid, vm: r.pb}, nil
			}
		}
	}
	var src cloneSrc
	m.db.View(func(tx *state.Tx) {
		for _, s := range tx.Snapshots() {
			for _, d := range s.Vm.GetDisks() {
				if d.Uuid == id {
					src = cloneSrc{container: cmp.Or(d.Container, defaultContainer), vdisk: id, size: d.SizeBytes,
						what: "vDisk " + diskName(d) + " of snapshot " + s.Name, ref: image.SnapshotRef(s), lock: s.Uuid}
					return
				}
			}
		}
		if im := tx.Image(id); im != nil {
			src = imageSrc(im)
			return
		}
		for _, vg := range tx.VolumeGroups() {
			for _, d := range vg.Disks {
				if d.Uuid == id {
					src = cloneSrc{container: cmp.Or(d.Container, defaultContainer), vdisk: id, size: d.SizeBytes,
						what: fmt.Sprintf("vDisk %d of volume group %s", d.Index, vg.Name), ref: storage.VgRef(vg), lock: vg.Uuid}
				}
			}
		}
	})
	if src.what != "" {
		return src, nil
	}
	return cloneSrc{}, apierr.NotFound("vDisk", id, nil)
}

func imageSrc(im *acliv1.Image) cloneSrc {
	return cloneSrc{container: im.Container, vdisk: im.VmdiskUuid, size: im.SizeBytes,
		what: "image " + im.Name, ref: image.Ref(im), lock: im.Uuid}
}

// fileSrc resolves clone_from_adsf_file: a vDisk's own path names that
// vDisk; any other file is asked of the driver (without Manager.mu).
func (m *Manager) fileSrc(ctx context.Context, path string) (cloneSrc, error) {
	container, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !strings.HasPrefix(path, "/") || container == "" || rest == "" {
		return cloneSrc{}, apierr.BadField("clone_from_adsf_file", "clone_from_adsf_file=%q is not /<container>/<path>, e.g. /%s/vdisks/<uuid>", path, defaultContainer)
	}
	m.mu.RLock()
	_, err := m.containerLocked(container)
	var src cloneSrc
	if id, ok := strings.CutPrefix(rest, "vdisks/"); err == nil && ok {
		src, err = m.vdiskLocked("clone_from_adsf_file", id)
		if err == nil && src.container != container {
			err = apierr.NotFound("file", path, nil)
		}
	}
	m.mu.RUnlock()
	if err != nil || src.what != "" {
		return src, err
	}
	st := m.storageDriver()
	if st == nil {
		return cloneSrc{}, apierr.NotFound("file", path, nil)
	}
	size, err := st.FileSize(ctx, path)
	if err != nil {
		return cloneSrc{}, apierr.BadField("clone_from_adsf_file", "clone_from_adsf_file=%s: %v", path, err)
	}
	return cloneSrc{container: container, file: path, size: size, what: "file " + path}, nil
}

// checkWriterLocked refuses reading an entity a task is changing (other
// readers are fine).
func (m *Manager) checkWriterLocked(kind, name, id string) error {
	if t := m.busy[id]; t != nil {
		return apierr.Busy(kind, name, t.PB.Uuid, t.PB.Operation.String())
	}
	return nil
}

// srcHeldLocked refuses a source that a task is changing.
func (m *Manager) srcHeldLocked(src cloneSrc) error {
	if src.lock == "" {
		return nil
	}
	return m.checkWriterLocked(strings.ToLower(strings.TrimPrefix(src.ref.Kind.String(), "k")), src.ref.Name, src.lock)
}

// volCopy is one vDisk copy.
type volCopy struct {
	src       cloneSrc
	container string
	dst       string
	size      int64
}

// copyVolumes makes the copies, with every running VM they read paused
// for all of them at once (so copies of one VM's disks are of one
// instant). On failure the copies made are removed.
func (m *Manager) copyVolumes(ctx context.Context, copies []volCopy) error {
	st := m.storageDriver()
	if st == nil {
		return fmt.Errorf("driver %s keeps no vDisks", m.drv.Name())
	}
	seen := map[string]bool{}
	for _, c := range copies {
		if v := c.src.vm; v != nil && !seen[v.Uuid] {
			seen[v.Uuid] = true
			release, err := m.pauseVm(ctx, v)
			if err != nil {
				return err
			}
			defer release()
		}
	}
	for i, c := range copies {
		var err error
		if c.src.file != "" {
			err = st.CloneFile(ctx, c.src.file, c.container, c.dst, c.size)
		} else {
			err = st.CloneVolume(ctx, c.container, c.src.vdisk, c.dst, c.size)
		}
		if err != nil {
			for _, done := range copies[:i] {
				st.DeleteVolume(context.WithoutCancel(ctx), done.container, done.dst)
			}
			return fmt.Errorf("copy %s: %w", c.src.what, err)
		}
	}
	return nil
}

// undoCopies removes copies whose records were refused.
func (m *Manager) undoCopies(ctx context.Context, copies []volCopy) func() {
	return func() {
		ds := make([]*acliv1.Disk, len(copies))
		for i, c := range copies {
			ds[i] = &acliv1.Disk{Uuid: c.dst, Container: c.container, SizeBytes: c.size}
		}
		m.removeVolumes(context.WithoutCancel(ctx), ds)
	}
}

// removeVolumes deletes volumes whose records are gone; a failure leaves
// unused space, never a record without its data.
func (m *Manager) removeVolumes(ctx context.Context, disks []*acliv1.Disk) {
	st := m.storageDriver()
	if st == nil {
		return
	}
	for _, d := range disks {
		if !state.HasData(d) {
			continue
		}
		if err := st.DeleteVolume(ctx, cmp.Or(d.Container, defaultContainer), d.Uuid); err != nil {
			m.log.Warn("removing a deleted vDisk's volume", "disk", d.Uuid, "err", err)
		}
	}
}
