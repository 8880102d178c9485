package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

func disk(id string, size int64, mut ...func(*acliv1.Disk)) *acliv1.Disk {
	d := &acliv1.Disk{Uuid: id, Bus: "scsi", SizeBytes: size}
	for _, f := range mut {
		f(d)
	}
	return d
}

func withDisks(v *acliv1.Vm, ds ...*acliv1.Disk) *acliv1.Vm {
	v.Disks = ds
	return v
}

func image(id string, size int64) *acliv1.Image {
	return &acliv1.Image{Uuid: id, Name: id, SizeBytes: size, Container: state.DefaultContainer}
}

func putStorage(tx *state.Tx, m proto.Message) {
	switch r := m.(type) {
	case *acliv1.Image:
		tx.Put(state.ImageKey(r.Uuid), r, state.AnyRev)
	case *acliv1.Snapshot:
		tx.Put(state.SnapshotKey(r.Uuid), r, state.AnyRev)
	case *acliv1.VolumeGroup:
		tx.Put(state.VgKey(r.Uuid), r, state.AnyRev)
	default:
		put(tx, m)
	}
}

// newStorageDB is newDB with a 100 GiB default-container holding VM a's
// 40 GiB disk and a 10 GiB image.
func newStorageDB(t *testing.T) *state.DB {
	t.Helper()
	db := newDB(t)
	db.SetCapacity(func(c string) int64 {
		if c == state.DefaultContainer {
			return 100 * gib
		}
		return 0
	})
	if _, err := db.Update(context.Background(), func(tx *state.Tx) error {
		put(tx, withDisks(vm("a", "h1", 4*gib), disk("d-a", 40*gib)))
		putStorage(tx, image("img", 10*gib))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestCapacityRule(t *testing.T) {
	tests := []struct {
		name     string
		capacity int64 // when set, the container shrank to it after the set-up
		writes   []proto.Message
		deletes  []string
		refused  bool
	}{
		{name: "a disk that fits", writes: []proto.Message{withDisks(vm("b", "", gib), disk("d-b", 50*gib))}},
		{name: "a disk that fills the container exactly", writes: []proto.Message{withDisks(vm("b", "", gib), disk("d-b", 50*gib), disk("d-b2", 0))}},
		{name: "a disk that does not fit", writes: []proto.Message{withDisks(vm("b", "", gib), disk("d-b", 51*gib))}, refused: true},
		{name: "two records that fit alone but not together", writes: []proto.Message{
			withDisks(vm("b", "", gib), disk("d-b", 30*gib)), image("img2", 30*gib)}, refused: true},
		{name: "a disk grown past the free space", writes: []proto.Message{withDisks(vm("a", "h1", 4*gib), disk("d-a", 91*gib))}, refused: true},
		{name: "a snapshot's copies count", writes: []proto.Message{
			&acliv1.Snapshot{Uuid: "s1", Name: "s1", Vm: withDisks(vm("a", "", 4*gib), disk("d-s1", 40*gib), disk("d-s2", 40*gib))}}, refused: true},
		{name: "a volume group's disks count", writes: []proto.Message{
			&acliv1.VolumeGroup{Uuid: "vg1", Name: "vg1", Disks: []*acliv1.VgDisk{{Uuid: "vd1", SizeBytes: 60 * gib}}}}, refused: true},
		{name: "an image counts", writes: []proto.Message{image("img2", 60*gib)}, refused: true},
		{name: "an empty CD-ROM takes nothing", writes: []proto.Message{withDisks(vm("b", "", gib), disk("cd", 0, func(d *acliv1.Disk) { d.Cdrom = true }))}},
		{name: "an inserted medium counts", writes: []proto.Message{withDisks(vm("b", "", gib), disk("cd", 60*gib, func(d *acliv1.Disk) { d.Cdrom = true }))}, refused: true},
		{name: "a volume group disk on a VM is the group's", writes: []proto.Message{
			withDisks(vm("b", "", gib), disk("vgd", 60*gib, func(d *acliv1.Disk) { d.VolumeGroupUuid = "vg1" }))}},
		{name: "another container is another budget", writes: []proto.Message{
			withDisks(vm("b", "", gib), disk("d-b", gib, func(d *acliv1.Disk) { d.Container = "small" }))}, refused: true},
		{name: "a move between records that frees space", writes: []proto.Message{
			withDisks(vm("a", "h1", 4*gib)), withDisks(vm("b", "", gib), disk("d-b", 90*gib))}},
		{name: "an over-full container may shrink", capacity: 20 * gib, deletes: []string{state.ImageKey("img")}},
		{name: "an over-full container refuses growth", capacity: 20 * gib, writes: []proto.Message{withDisks(vm("b", "", gib), disk("d-b", 1))}, refused: true},
		{name: "an over-full container keeps edits that do not grow it", capacity: 20 * gib,
			writes: []proto.Message{edit(withDisks(vm("a", "h1", 4*gib), disk("d-a", 40*gib)), func(v *acliv1.Vm) { v.Description = "x" })}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newStorageDB(t)
			if tt.capacity > 0 {
				db.SetCapacity(func(string) int64 { return tt.capacity })
			}
			before := db.ContainerUse(state.DefaultContainer)
			_, err := db.Update(context.Background(), func(tx *state.Tx) error {
				for _, m := range tt.writes {
					putStorage(tx, m)
				}
				for _, k := range tt.deletes {
					tx.Delete(k, state.AnyRev)
				}
				return nil
			})
			var ve *state.ViolationError
			if !tt.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a %s violation", err, state.RuleCapacity)
			}
			if len(ve.Violations) != 1 || ve.Violations[0].Rule != state.RuleCapacity {
				t.Fatalf("violations %+v, want one %s", ve.Violations, state.RuleCapacity)
			}
			if after := db.ContainerUse(state.DefaultContainer); after != before {
				t.Errorf("a refused commit changed the container's use: %+v, was %+v", after, before)
			}
		})
	}
}

func TestContainerUseFollowsCommits(t *testing.T) {
	db := newStorageDB(t)
	ctx := context.Background()
	want := func(bytes int64, vdisks, images int32) {
		t.Helper()
		if got := db.ContainerUse(state.DefaultContainer); got != (state.ContainerUse{Bytes: bytes, Vdisks: vdisks, Images: images}) {
			t.Errorf("use %+v, want %d bytes, %d vDisks, %d images", got, bytes, vdisks, images)
		}
	}
	want(50*gib, 1, 1)
	// A commit the store refuses (a stale revision) leaves no use behind.
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		tx.Put(state.ImageKey("img2"), image("img2", 5*gib), 0)
		tx.Put(state.ImageKey("img"), image("img", 20*gib), 999999)
		return nil
	}); !store.IsConflict(err) {
		t.Fatalf("stale write: %v, want a conflict", err)
	}
	want(50*gib, 1, 1)
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		putStorage(tx, &acliv1.VolumeGroup{Uuid: "vg1", Name: "vg1", Disks: []*acliv1.VgDisk{{Uuid: "vd1", SizeBytes: gib}, {Uuid: "vd2", SizeBytes: gib}}})
		putStorage(tx, &acliv1.Snapshot{Uuid: "s1", Name: "s1", Vm: withDisks(vm("a", "", 4*gib), disk("d-s1", 40*gib))})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want(92*gib, 4, 1)
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		tx.Delete(state.SnapshotKey("s1"), state.AnyRev)
		tx.Delete(state.ImageKey("img"), state.AnyRev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want(42*gib, 3, 0)
	db.View(func(tx *state.Tx) {
		if tx.Snapshot("s1") != nil || tx.Image("img") != nil || tx.VolumeGroup("vg1") == nil {
			t.Errorf("records after the deletes: snapshot %v, image %v, vg %v", tx.Snapshot("s1"), tx.Image("img"), tx.VolumeGroup("vg1"))
		}
	})
}

func TestLoadCountsContainerUse(t *testing.T) {
	st, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	db := state.NewDB(st)
	if _, err := db.Update(ctx, func(tx *state.Tx) error {
		put(tx, withDisks(vm("a", "", gib), disk("d-a", 3*gib)))
		putStorage(tx, image("img", gib))
		putStorage(tx, &acliv1.Snapshot{Uuid: "s1", Name: "s1", Vm: withDisks(vm("a", "", gib), disk("d-s1", 3*gib))})
		putStorage(tx, &acliv1.VolumeGroup{Uuid: "vg1", Name: "vg1", Disks: []*acliv1.VgDisk{{Uuid: "vd1", SizeBytes: gib}}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db2 := state.NewDB(st)
	if err := db2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := db2.ContainerUse(state.DefaultContainer), (state.ContainerUse{Bytes: 8 * gib, Vdisks: 3, Images: 1}); got != want {
		t.Errorf("loaded use %+v, want %+v", got, want)
	}
}

func TestImagesAndSnapshotsListStagedWrites(t *testing.T) {
	db := newStorageDB(t)
	snap := &acliv1.Snapshot{Uuid: "s1", Name: "s1", Vm: &acliv1.Vm{}}
	if _, err := db.Update(context.Background(), func(tx *state.Tx) error {
		putStorage(tx, snap)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(context.Background(), func(tx *state.Tx) error {
		putStorage(tx, image("a-img", gib))
		tx.Delete(state.ImageKey("img"), state.AnyRev)
		tx.Delete(state.SnapshotKey("s1"), state.AnyRev)
		if named := tx.SnapshotsNamed("s1"); len(named) != 0 {
			t.Errorf("staged: SnapshotsNamed(s1) = %v; want none, it is deleted", named)
		}
		var imgs []string
		for _, im := range tx.Images() {
			imgs = append(imgs, im.Uuid)
		}
		if len(imgs) != 1 || imgs[0] != "a-img" || len(tx.Snapshots()) != 0 {
			t.Errorf("staged: images %v, %d snapshots; want [a-img] and none", imgs, len(tx.Snapshots()))
		}
		return errors.New("dropped")
	}); err == nil {
		t.Fatal("the update was not dropped")
	}
	if _, err := db.Update(context.Background(), func(tx *state.Tx) error {
		putStorage(tx, &acliv1.Snapshot{Uuid: "s0", Name: "s1", Vm: &acliv1.Vm{}})
		putStorage(tx, &acliv1.Snapshot{Uuid: "s2", Name: "other", Vm: &acliv1.Vm{}})
		if named := tx.SnapshotsNamed("s1"); len(named) != 2 || named[0].Uuid != "s0" || named[1].Uuid != "s1" {
			t.Errorf("staged: SnapshotsNamed(s1) = %v; want s0 and s1", named)
		}
		return errors.New("dropped")
	}); err == nil {
		t.Fatal("the update was not dropped")
	}
	db.View(func(tx *state.Tx) {
		if named := tx.SnapshotsNamed("s1"); len(named) != 1 || named[0].Uuid != "s1" {
			t.Errorf("committed: SnapshotsNamed(s1) = %v; want s1", named)
		}
		if ims, ss := tx.Images(), tx.Snapshots(); len(ims) != 1 || ims[0].Uuid != "img" || len(ss) != 1 || ss[0].Uuid != "s1" {
			t.Errorf("committed: %d images, %d snapshots; want img and s1", len(ims), len(ss))
		}
	})
}

// Image names are unique, and so are a VM's snapshots' names, at commit:
// whatever the request path checked, a second record of a name is refused.
func TestStorageNamesAreUniqueAtCommit(t *testing.T) {
	db := newStorageDB(t)
	snap := func(id, vm, name string) *acliv1.Snapshot {
		return &acliv1.Snapshot{Uuid: id, Name: name, VmUuid: vm, VmName: vm, Vm: &acliv1.Vm{}}
	}
	commit := func(msgs ...proto.Message) error {
		_, err := db.Update(context.Background(), func(tx *state.Tx) error {
			for _, m := range msgs {
				putStorage(tx, m)
			}
			return nil
		})
		return err
	}
	if err := commit(snap("s1", "a", "daily"), snap("s2", "b", "daily")); err != nil {
		t.Fatalf("two VMs' snapshots of one name: %v", err)
	}
	for _, tc := range []struct {
		name string
		msgs []proto.Message
		want string
	}{
		{"image name taken", []proto.Message{&acliv1.Image{Uuid: "img2", Name: "img", SizeBytes: gib}}, "image name img is taken by image img"},
		{"two new images of one name", []proto.Message{&acliv1.Image{Uuid: "x1", Name: "x"}, &acliv1.Image{Uuid: "x2", Name: "x"}}, "image name x is taken by image x2"},
		{"bad image name", []proto.Message{&acliv1.Image{Uuid: "x3", Name: "=x"}}, "image name"},
		{"snapshot name taken on its VM", []proto.Message{snap("s3", "a", "daily")}, "vm a has a snapshot named daily already (s1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := commit(tc.msgs...)
			var ve *state.ViolationError
			if !errors.As(err, &ve) || ve.Violations[0].Rule != state.RuleName || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want a NAME violation saying %q", err, tc.want)
			}
		})
	}
	// Renaming an image to its own name, or updating it, is no clash.
	if err := commit(&acliv1.Image{Uuid: "img", Name: "img", SizeBytes: 10 * gib, Annotation: "a"}); err != nil {
		t.Errorf("updating image img: %v", err)
	}
}
