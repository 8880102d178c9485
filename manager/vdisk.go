package manager

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
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

// storageState is guarded by Manager.mu.
type storageState struct {
	// readers are the running tasks copying from an entity (a VM, image,
	// snapshot or volume group): it cannot change or go while they read,
	// and any number of them may read at once.
	readers map[string][]*taskRec
	// containers hold the volumes (manager/storage).
	containers *storage.Containers
}

func (m *Manager) initStorage() {
	m.stor.readers = map[string][]*taskRec{}
	m.stor.containers = &storage.Containers{DB: m.db, Driver: m.storageDriver(), DriverName: m.drv.Name(), Log: m.log}
	m.stor.containers.Pauser, _ = m.drv.(driver.Pauser)
}

// heldLocked is the task holding an entity: the one changing it, else the
// first one copying from it.
func (m *Manager) heldLocked(id string) *taskRec {
	if t := m.busyLocked(id); t != nil {
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
			m.settleLocked(id, time.Now())
			rs := slices.DeleteFunc(m.stor.readers[id], func(r *taskRec) bool { return r == t })
			if len(rs) == 0 {
				delete(m.stor.readers, id)
			} else {
				m.stor.readers[id] = rs
			}
		}
	}
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
	for _, r := range m.vmRecs() {
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
	if t := m.busyLocked(id); t != nil {
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

// copyVolumes makes the copies (storage.Containers.Copy).
func (m *Manager) copyVolumes(ctx context.Context, copies []volCopy) error {
	cs := make([]storage.Copy, len(copies))
	for i, c := range copies {
		cs[i] = storage.Copy{Src: c.src.source(), Container: c.container, Dst: c.dst, Size: c.size}
	}
	return m.stor.containers.Copy(ctx, cs)
}

// source is what storage copies of a clone source.
func (s cloneSrc) source() storage.Source {
	return storage.Source{Container: s.container, Vdisk: s.vdisk, File: s.file, Size: s.size, What: s.what, Vm: s.vm}
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

// removeVolumes deletes volumes whose records are gone
// (storage.Containers.Remove).
func (m *Manager) removeVolumes(ctx context.Context, disks []*acliv1.Disk) {
	m.stor.containers.Remove(ctx, disks)
}
