package state

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Store keys of the records that hold container space besides VMs.
const (
	ImagePrefix    = "/images/"
	SnapshotPrefix = "/snapshots/"
	VgPrefix       = "/vgs/"
)

// ImageKey, SnapshotKey and VgKey are the store keys of one record.
func ImageKey(id string) string    { return ImagePrefix + id }
func SnapshotKey(id string) string { return SnapshotPrefix + id }
func VgKey(id string) string       { return VgPrefix + id }

// DefaultContainer is the container a vDisk or image without one is in.
const DefaultContainer = "default-container"

// Use is the container space one vDisk or image takes: its logical size,
// as thin volumes may fill up to it.
type Use struct {
	Container string
	Bytes     int64
	Image     bool
}

// ContainerUse is what a container holds.
type ContainerUse struct {
	Bytes          int64
	Vdisks, Images int32
}

// HasData says whether a VM disk has a volume of its own: CD-ROMs without
// a medium and volume group disks (the group's) have none.
func HasData(d *acliv1.Disk) bool {
	return d.VolumeGroupUuid == "" && (!d.Cdrom || d.SizeBytes > 0)
}

// StorageUse is the container space a record takes (VMs, snapshots,
// images and volume groups take some; other records none).
func StorageUse(msg proto.Message) []Use {
	var out []Use
	vm := func(v *acliv1.Vm) {
		for _, d := range v.GetDisks() {
			if HasData(d) {
				out = append(out, Use{Container: cmp.Or(d.Container, DefaultContainer), Bytes: d.SizeBytes})
			}
		}
	}
	switch r := msg.(type) {
	case *acliv1.Vm:
		vm(r)
	case *acliv1.Snapshot:
		vm(r.Vm)
	case *acliv1.Image:
		out = append(out, Use{Container: cmp.Or(r.Container, DefaultContainer), Bytes: r.SizeBytes, Image: true})
	case *acliv1.VolumeGroup:
		for _, d := range r.Disks {
			out = append(out, Use{Container: cmp.Or(d.Container, DefaultContainer), Bytes: d.SizeBytes})
		}
	}
	return out
}

// SetCapacity gives the DB the size of each container (a driver's
// figure); until then containers are unbounded.
func (db *DB) SetCapacity(capacity func(container string) int64) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	db.mu.Lock()
	defer db.mu.Unlock()
	db.capacity = capacity
}

// Capacity is a container's size (0 and false when unbounded).
func (db *DB) Capacity(container string) (int64, bool) {
	db.mu.RLock()
	c := db.capacity
	db.mu.RUnlock()
	if c == nil {
		return 0, false
	}
	return c(container), true
}

// ContainerUse is what a container holds as committed.
func (db *DB) ContainerUse(container string) ContainerUse {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.stored[container]
}

// accountLocked moves a record's container space from old to next.
func (db *DB) accountLocked(old, next proto.Message) {
	for _, u := range StorageUse(old) {
		db.stored[u.Container] = db.stored[u.Container].add(u, -1)
	}
	for _, u := range StorageUse(next) {
		db.stored[u.Container] = db.stored[u.Container].add(u, 1)
	}
}

func (c ContainerUse) add(u Use, sign int32) ContainerUse {
	c.Bytes += int64(sign) * u.Bytes
	if u.Image {
		c.Images += sign
	} else {
		c.Vdisks += sign
	}
	return c
}

// Image is an image by UUID (nil if none).
func (tx *Tx) Image(id string) *acliv1.Image {
	if m, ok := tx.staging(ImageKey(id)); ok {
		r, _ := m.(*acliv1.Image)
		return r
	}
	return tx.db.imgs[id]
}

// Snapshot is a snapshot by UUID (nil if none).
func (tx *Tx) Snapshot(id string) *acliv1.Snapshot {
	if m, ok := tx.staging(SnapshotKey(id)); ok {
		r, _ := m.(*acliv1.Snapshot)
		return r
	}
	return tx.db.snaps[id]
}

// Images are every image, ordered by UUID.
func (tx *Tx) Images() []*acliv1.Image { return collect(tx, tx.db.imgs, ImagePrefix, tx.Image) }

// Snapshots are every snapshot, ordered by UUID.
func (tx *Tx) Snapshots() []*acliv1.Snapshot {
	return collect(tx, tx.db.snaps, SnapshotPrefix, tx.Snapshot)
}

// SnapshotsNamed are the snapshots named name (several VMs' snapshots may
// share one), by UUID. It sorts only those it finds.
func (tx *Tx) SnapshotsNamed(name string) []*acliv1.Snapshot {
	var out []*acliv1.Snapshot
	for id, sn := range tx.db.snaps {
		if sn.Name != name {
			continue
		}
		if _, staged := tx.staged[SnapshotKey(id)]; !staged {
			out = append(out, sn)
		}
	}
	for _, w := range tx.writes {
		if sn, _ := w.Msg.(*acliv1.Snapshot); sn != nil && sn.Name == name && strings.HasPrefix(w.Key, SnapshotPrefix) {
			out = append(out, sn)
		}
	}
	slices.SortFunc(out, func(a, b *acliv1.Snapshot) int { return strings.Compare(a.Uuid, b.Uuid) })
	return out
}

// VolumeGroup is a volume group by UUID (nil if none).
func (tx *Tx) VolumeGroup(id string) *acliv1.VolumeGroup {
	if m, ok := tx.staging(VgKey(id)); ok {
		r, _ := m.(*acliv1.VolumeGroup)
		return r
	}
	return tx.db.vgs[id]
}

// checkStorageName keeps image names unique, and a VM's snapshots' names.
func (tx *Tx) checkStorageName(w Write) []Violation {
	var vs []Violation
	add := func(subject, format string, args ...any) {
		vs = append(vs, Violation{Rule: RuleName, Subject: subject, Description: fmt.Sprintf(format, args...)})
	}
	switch r := w.Msg.(type) {
	case *acliv1.Image:
		if prev := tx.db.imgs[r.Uuid]; prev == nil || prev.Name != r.Name {
			if err := CheckName("image", r.Name); err != nil {
				add("image:"+r.Name, "%v", err)
			}
		}
		for _, o := range tx.Images() {
			if o.Name == r.Name && o.Uuid != r.Uuid {
				add("image:"+r.Name, "image name %s is taken by image %s", r.Name, o.Uuid)
			}
		}
	case *acliv1.Snapshot:
		if prev := tx.db.snaps[r.Uuid]; prev == nil || prev.Name != r.Name {
			if err := CheckName("snapshot", r.Name); err != nil {
				add("snapshot:"+r.Name, "%v", err)
			}
		}
		for _, o := range tx.SnapshotsNamed(r.Name) {
			if o.VmUuid == r.VmUuid && o.Uuid != r.Uuid {
				add("snapshot:"+r.Name, "vm %s has a snapshot named %s already (%s)", r.VmName, r.Name, o.Uuid)
			}
		}
	}
	return vs
}

// storageGrowth is how many bytes the staged writes add to each container
// they grow, in container order.
func (tx *Tx) storageGrowth() (names []string, grow map[string]int64) {
	for _, w := range tx.writes {
		add, del := StorageUse(w.Msg), StorageUse(tx.db.recordLocked(w.Key))
		if len(add) == 0 && len(del) == 0 {
			continue
		}
		if grow == nil {
			grow = map[string]int64{}
		}
		for _, u := range add {
			grow[u.Container] += u.Bytes
		}
		for _, u := range del {
			grow[u.Container] -= u.Bytes
		}
	}
	for c, n := range grow {
		if n > 0 {
			names = append(names, c)
		}
	}
	slices.Sort(names)
	return names, grow
}

// checkCapacity refuses a commit that grows a container past its size.
// Commits are serialised, so two cannot both take the last free bytes.
func (tx *Tx) checkCapacity(add func(rule, subject, format string, args ...any)) {
	if tx.db.capacity == nil {
		return
	}
	names, grow := tx.storageGrowth()
	for _, c := range names {
		size := tx.db.capacity(c)
		used := tx.db.stored[c].Bytes
		if used+grow[c] > size {
			add(RuleCapacity, "container:"+c, "%s more does not fit container %s: %s of %s used, %s free",
				gibs(grow[c]), c, gibs(used), gibs(size), gibs(max(size-used, 0)))
		}
	}
}

// gibs formats a size for a violation.
func gibs(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d bytes", n)
	}
	if n < 1<<30 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

// putVgLocked makes a volume group record committed (msg nil: deleted),
// keeping the index of the VMs it is attached to.
func (db *DB) putVgLocked(id string, msg proto.Message) {
	if old := db.vgs[id]; old != nil {
		for _, vm := range old.VmUuids {
			if list := slices.DeleteFunc(db.vgsOfVm[vm], func(x string) bool { return x == id }); len(list) > 0 {
				db.vgsOfVm[vm] = list
			} else {
				delete(db.vgsOfVm, vm)
			}
		}
	}
	putOrDelete(db.vgs, id, msg)
	if vg := db.vgs[id]; vg != nil {
		for _, vm := range vg.VmUuids {
			db.vgsOfVm[vm] = append(db.vgsOfVm[vm], id)
		}
	}
}

// VolumeGroups are every volume group, ordered by UUID.
func (tx *Tx) VolumeGroups() []*acliv1.VolumeGroup {
	return collect(tx, tx.db.vgs, VgPrefix, tx.VolumeGroup)
}

// VolumeGroupsOf are the committed volume groups attached to a VM (staged
// writes aside), ordered by UUID.
func (tx *Tx) VolumeGroupsOf(vm string) []*acliv1.VolumeGroup {
	ids := tx.db.vgsOfVm[vm]
	out := make([]*acliv1.VolumeGroup, 0, len(ids))
	for _, id := range ids {
		out = append(out, tx.db.vgs[id])
	}
	slices.SortFunc(out, func(a, b *acliv1.VolumeGroup) int { return cmp.Compare(a.Uuid, b.Uuid) })
	return out
}
