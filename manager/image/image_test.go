package image_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
)

func createReq(name string) *acliv1.CreateImageRequest {
	return &acliv1.CreateImageRequest{Name: name, SourceUrl: "http://127.49.0.1/" + name + ".qcow2", ImageType: acliv1.ImageType_kDiskImage}
}

func wantCode(t *testing.T, err error, code codes.Code, text string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(err.Error(), text) {
		t.Fatalf("err = %v; want %s containing %q", err, code, text)
	}
}

func images(t *testing.T, f *fixture) []string {
	t.Helper()
	out, err := f.svc.ListImages(bg, &acliv1.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, im := range out.Images {
		names = append(names, im.Name)
	}
	return names
}

// An import is recorded only once its volume is complete; while it runs
// its name is taken by the task, and the task can be cancelled until the
// volume is whole.
func TestImportRecordsTheImageWhenComplete(t *testing.T) {
	f := newFixture(t)
	f.vols.importGate = make(chan struct{})
	f.vols.imported = driver.Imported{Size: 2 * gib, SHA256: "abc", SourceFormat: "qcow2"}
	task, err := f.svc.CreateImage(bg, createReq("debian"))
	if err != nil {
		t.Fatal(err)
	}
	if !task.Cancellable || task.Operation != acliv1.TaskOperation_kImageCreate {
		t.Errorf("task = %v; want a cancellable kImageCreate", task)
	}
	if got := images(t, f); len(got) != 0 {
		t.Errorf("images while importing = %v; want none", got)
	}
	_, err = f.svc.CreateImage(bg, createReq("debian"))
	wantCode(t, err, codes.Aborted, task.Uuid)
	close(f.vols.importGate)
	end := f.tasks.wait(task)
	if end.Status != acliv1.TaskStatus_kSucceeded || !strings.Contains(strings.Join(end.Messages, ";"), "image debian imported (2 GiB qcow2, sha256 abc)") {
		t.Fatalf("end = %v", end)
	}
	im, err := f.svc.GetImage(bg, &acliv1.GetImageRequest{Image: "debian"})
	if err != nil {
		t.Fatal(err)
	}
	if im.State != acliv1.ImageState_kActive || im.SizeBytes != 2*gib || im.VmdiskUuid != im.Uuid || im.Container != state.DefaultContainer {
		t.Errorf("image = %v", im)
	}
	if f.tasks.pastReturn != 1 || len(f.tasks.progress) == 0 || !strings.Contains(f.tasks.progress[len(f.tasks.progress)-1], "2 GiB of 2 GiB read") {
		t.Errorf("past return %d, progress %q", f.tasks.pastReturn, f.tasks.progress)
	}
	if use := f.db.ContainerUse(state.DefaultContainer); use.Images != 1 {
		t.Errorf("container use = %+v; want one image", use)
	}
	_, err = f.svc.CreateImage(bg, createReq("debian"))
	wantCode(t, err, codes.AlreadyExists, im.Uuid)
}

// A failed import, one that does not fit, and one whose record is refused
// at commit leave neither a record nor a volume.
func TestImportFailuresLeaveNothing(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		setup      func(f *fixture)
	}{
		{"driver fails", "import image i: connection refused", func(f *fixture) {
			f.vols.importErr = errors.New("connection refused")
			f.vols.imported.Size = gib
		}},
		{"does not fit", "image i (80 GiB) does not fit container default-container: 35 GiB of 100 GiB used", func(f *fixture) {
			f.vols.imported.Size = 80 * gib
		}},
		{"refused at commit", "30.0 GiB more does not fit container default-container", func(f *fixture) {
			f.vols.imported.Size = 30 * gib
			// Another image takes the space between the check and the commit.
			f.tasks.beforeCommit = func() {
				if _, err := f.db.Update(bg, func(tx *state.Tx) error {
					tx.Put(state.ImageKey("other"), &acliv1.Image{Uuid: "other", Name: "other", SizeBytes: 40 * gib}, 0)
					return nil
				}); err != nil {
					t.Error(err)
				}
			}
		}},
		{"name taken at commit", "image name i is taken by image other", func(f *fixture) {
			f.vols.imported.Size = gib
			// A record of the name that bypassed the name lock.
			f.tasks.beforeCommit = func() {
				if _, err := f.db.Update(bg, func(tx *state.Tx) error {
					tx.Put(state.ImageKey("other"), &acliv1.Image{Uuid: "other", Name: "i"}, 0)
					return nil
				}); err != nil {
					t.Error(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			task, err := f.svc.CreateImage(bg, createReq("i"))
			if err != nil {
				t.Fatal(err)
			}
			end := f.tasks.wait(task)
			if end.Status != acliv1.TaskStatus_kFailed || !strings.Contains(end.Error, tc.want) {
				t.Fatalf("end = %v; want failed with %q", end, tc.want)
			}
			out, err := f.svc.ListImages(bg, &acliv1.ListImagesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range out.Images {
				if im.Uuid == task.Entities[0].Uuid {
					t.Errorf("the failed import is recorded: %v", im)
				}
			}
			if f.vols.has(task.Entities[0].Uuid) {
				t.Errorf("the import's volume is left")
			}
		})
	}
}

// A cancelled import ends failed with no record and no volume, its name
// free again; once the volume is whole it can no longer be cancelled.
func TestCancelledImportLeavesNothing(t *testing.T) {
	f := newFixture(t)
	f.vols.importGate = make(chan struct{})
	f.vols.imported.Size = gib
	task, err := f.svc.CreateImage(bg, createReq("i"))
	if err != nil {
		t.Fatal(err)
	}
	if !f.tasks.cancel(task.Uuid) {
		t.Fatal("the import could not be cancelled")
	}
	end := f.tasks.wait(task)
	if end.Status != acliv1.TaskStatus_kFailed || !strings.Contains(end.Error, "import image i: context canceled") {
		t.Fatalf("end = %v", end)
	}
	if len(images(t, f)) != 0 || f.vols.has(task.Entities[0].Uuid) {
		t.Errorf("the cancelled import left a record or a volume")
	}
	f.vols.importGate = nil
	f.tasks.beforeCommit = func() {
		if n := f.tasks.cancellable(); n > 0 {
			t.Errorf("%d task(s) cancellable with the volume whole", n)
		}
	}
	next, err := f.svc.CreateImage(bg, createReq("i"))
	if err != nil {
		t.Fatal(err)
	}
	if end := f.tasks.wait(next); end.Status != acliv1.TaskStatus_kSucceeded {
		t.Errorf("the second import: %v", end)
	}
}

func TestCreateImageRefusesBadInput(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.CreateImage(bg, &acliv1.CreateImageRequest{Name: "x", SourceUrl: "ftp://h/x", ImageType: acliv1.ImageType_kDiskImage})
	wantCode(t, err, codes.InvalidArgument, "scheme must be http, https or file")
	_, err = f.svc.CreateImage(bg, &acliv1.CreateImageRequest{Name: "x", SourceUrl: "file://rel/x"})
	wantCode(t, err, codes.InvalidArgument, "image_type is required")
	req := createReq("x")
	req.Container = "nosuch"
	_, err = f.svc.CreateImage(bg, req)
	if err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("err = %v; want the container refused", err)
	}
}

func seedImage(t *testing.T, f *fixture, id, name string) *acliv1.Image {
	t.Helper()
	im := &acliv1.Image{Uuid: id, Name: name, SizeBytes: gib, Container: state.DefaultContainer, VmdiskUuid: id, State: acliv1.ImageState_kActive}
	if _, err := f.db.Update(bg, func(tx *state.Tx) error {
		tx.Put(state.ImageKey(id), im, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.vols.vols[id] = gib
	return im
}

func TestUpdateImageRenames(t *testing.T) {
	f := newFixture(t)
	seedImage(t, f, "img-a", "a")
	seedImage(t, f, "img-b", "b")
	_, err := f.svc.UpdateImage(bg, &acliv1.UpdateImageRequest{Image: "a", Name: proto.String("b")})
	wantCode(t, err, codes.AlreadyExists, "img-b")
	if _, err := f.svc.UpdateImage(bg, &acliv1.UpdateImageRequest{Image: "a", Name: proto.String("c"), Annotation: proto.String("note")}); err != nil {
		t.Fatal(err)
	}
	im, err := f.svc.GetImage(bg, &acliv1.GetImageRequest{Image: "c"})
	if err != nil || im.Uuid != "img-a" || im.Annotation != "note" {
		t.Fatalf("image c = %v, %v", im, err)
	}
	_, err = f.svc.GetImage(bg, &acliv1.GetImageRequest{Image: "a"})
	wantCode(t, err, codes.NotFound, `image "a" not found`)
	_, err = f.svc.UpdateImage(bg, &acliv1.UpdateImageRequest{Image: "c"})
	wantCode(t, err, codes.InvalidArgument, "nothing to update")
	_, err = f.svc.GetImage(bg, &acliv1.GetImageRequest{Image: strings.Repeat("c", state.MaxNameBytes+1)})
	wantCode(t, err, codes.InvalidArgument, "no name or UUID is longer than")
}

// A rename to the name an import is taking waits for the import; the
// refusal leaves the image free.
func TestRenameToANameBeingImported(t *testing.T) {
	f := newFixture(t)
	seedImage(t, f, "img-a", "a")
	f.vols.importGate = make(chan struct{})
	f.vols.imported = driver.Imported{Size: gib, SHA256: "abc", SourceFormat: "raw"}
	task, err := f.svc.CreateImage(bg, createReq("debian"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.UpdateImage(bg, &acliv1.UpdateImageRequest{Image: "a", Name: proto.String("debian")})
	wantCode(t, err, codes.Aborted, "image name debian is busy with task "+task.Uuid+"; wait for it to finish")
	if _, err := f.svc.UpdateImage(bg, &acliv1.UpdateImageRequest{Image: "a", Annotation: proto.String("x")}); err != nil {
		t.Fatalf("image a is still held after the refusal: %v", err)
	}
	close(f.vols.importGate)
	if end := f.tasks.wait(task); end.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("import %v", end)
	}
	_, err = f.svc.UpdateImage(bg, &acliv1.UpdateImageRequest{Image: "a", Name: proto.String("debian")})
	wantCode(t, err, codes.AlreadyExists, "image names are unique")
}

// An image a clone is copying cannot go until the copy ends; then its
// record goes first and its volume after, while the clone keeps its own.
func TestDeleteImageWaitsForReaders(t *testing.T) {
	f := newFixture(t)
	im := seedImage(t, f, "img-a", "a")
	reader, done := f.tasks.read(im.Uuid)
	_, err := f.svc.DeleteImage(bg, &acliv1.DeleteImageRequest{Image: "a"})
	wantCode(t, err, codes.Aborted, reader.Uuid)
	_, err = f.svc.UpdateImage(bg, &acliv1.UpdateImageRequest{Image: "a", Annotation: proto.String("x")})
	wantCode(t, err, codes.Aborted, reader.Uuid)
	f.vols.vols["clone-of-a"] = gib // what the reader made
	done()
	task, err := f.svc.DeleteImage(bg, &acliv1.DeleteImageRequest{Image: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if task.Status != acliv1.TaskStatus_kSucceeded || strings.Join(task.Messages, ";") != "image a deleted" {
		t.Errorf("task = %v", task)
	}
	if got := images(t, f); len(got) != 0 {
		t.Errorf("images = %v", got)
	}
	if f.vols.has(im.Uuid) || !f.vols.has("clone-of-a") {
		t.Errorf("volumes = %v; want the image's gone, the clone's kept", f.vols.vols)
	}
	if len(f.vols.early) > 0 {
		t.Errorf("volumes removed while still recorded: %v", f.vols.early)
	}
	_, err = f.svc.DeleteImage(bg, &acliv1.DeleteImageRequest{Image: "a"})
	wantCode(t, err, codes.NotFound, `image "a" not found`)
}

// A record whose revision moved since it was read is not deleted, and its
// volume stays.
func TestDeleteImageLosingARaceKeepsTheVolume(t *testing.T) {
	f := newFixture(t)
	im := seedImage(t, f, "img-a", "a")
	f.tasks.beforeCommit = func() {
		if _, err := f.db.Update(bg, func(tx *state.Tx) error {
			next := proto.Clone(im).(*acliv1.Image)
			next.Annotation = "changed meanwhile"
			tx.Put(state.ImageKey(im.Uuid), next, state.AnyRev)
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	if _, err := f.svc.DeleteImage(bg, &acliv1.DeleteImageRequest{Image: "a"}); err == nil {
		t.Fatal("the delete of a changed record was committed")
	}
	if !f.vols.has(im.Uuid) || len(images(t, f)) != 1 {
		t.Errorf("the image or its volume went")
	}
}
