package manager

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
)

// Storage containers and images. The cluster has one container,
// default-container, sized by the driver. Every vDisk and image is an
// independent volume (sparse copies, manager/storage/volume), so deleting
// an image never strands a disk cloned from it.
const defaultContainer = state.DefaultContainer

const imagePrefix = state.ImagePrefix

func imageKey(id string) string { return state.ImageKey(id) }

// imageState is guarded by Manager.mu.
type imageState struct {
	images map[string]*imgRec
	byName map[string]*imgRec
}

type imgRec struct {
	pb  *acliv1.Image
	rev int64
}

func (m *Manager) initImages() {
	m.imgs.images = map[string]*imgRec{}
	m.imgs.byName = map[string]*imgRec{}
}

// loadImages reads the images; one left importing by a previous run is
// dropped, as its import task was failed on recovery.
func (m *Manager) loadImages(ctx context.Context) error {
	return loadAll(ctx, m.st, imagePrefix, m.putImageLocked)
}

func (m *Manager) putImageLocked(im *acliv1.Image, rev int64) {
	if old := m.imgs.images[im.Uuid]; old != nil {
		delete(m.imgs.byName, old.pb.Name)
	}
	r := &imgRec{pb: im, rev: rev}
	m.imgs.images[im.Uuid] = r
	m.imgs.byName[im.Name] = r
}

func (m *Manager) deleteImageLocked(id string) {
	if r := m.imgs.images[id]; r != nil {
		delete(m.imgs.byName, r.pb.Name)
		delete(m.imgs.images, id)
	}
}

func (m *Manager) imageLocked(field, ref string) (*imgRec, error) {
	if r := m.imgs.images[ref]; r != nil {
		return r, nil
	}
	if r := m.imgs.byName[ref]; r != nil {
		return r, nil
	}
	names := make([]string, 0, len(m.imgs.byName))
	for n := range m.imgs.byName {
		names = append(names, n)
	}
	return nil, apierr.NotFound("image", ref, names)
}

func imageRef(im *acliv1.Image) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kImage, Uuid: im.Uuid, Name: im.Name}
}

// storageDriver is the driver's storage, or nil when it keeps none.
func (m *Manager) storageDriver() driver.Storage {
	s, _ := m.drv.(driver.Storage)
	return s
}

// containerLocked checks a container name.
func (m *Manager) containerLocked(name string) (string, error) {
	name = cmp.Or(name, defaultContainer)
	if name != defaultContainer {
		return "", apierr.NotFound("container", name, []string{defaultContainer})
	}
	return name, nil
}

// checkCapacityLocked refuses early, with what the request names, adding
// bytes that do not fit the container as committed; the capacity rule
// (state.RuleCapacity) refuses the commit of whatever still does not fit.
func (m *Manager) checkCapacityLocked(container string, add int64, what string) error {
	capacity := m.containerCapacity(container)
	used := m.db.ContainerUse(container).Bytes
	if used+add > capacity {
		return apierr.Precondition(state.RuleCapacity, "container:"+container,
			"%s (%s) does not fit container %s: %s of %s used, %s free",
			what, scheduler.Bytes(add), container, scheduler.Bytes(used), scheduler.Bytes(capacity), scheduler.Bytes(max(capacity-used, 0)))
	}
	return nil
}

func (m *Manager) containerCapacity(container string) int64 {
	if s := m.storageDriver(); s != nil {
		if c, err := s.ContainerCapacity(container); err == nil {
			return c
		}
	}
	return 1 << 50
}

// ---- StorageContainerService ----

// containerService is the storage container feature behind manager/rpc's adapter.
type containerService struct {
	m *Manager
}

func (s containerService) container(name string) *acliv1.StorageContainer {
	m := s.m
	use := m.db.ContainerUse(name)
	return &acliv1.StorageContainer{
		Uuid: uuid.NewSHA1(uuid.NameSpaceOID, []byte(m.clusterRecord().Uuid+"/"+name)).String(), Name: name,
		CapacityBytes: m.containerCapacity(name), UsedBytes: use.Bytes, NumVdisks: use.Vdisks, NumImages: use.Images,
	}
}

func (s containerService) ListContainers(ctx context.Context, _ *acliv1.ListContainersRequest) (*acliv1.ListContainersResponse, error) {
	s.m.mu.RLock()
	defer s.m.mu.RUnlock()
	return &acliv1.ListContainersResponse{Containers: []*acliv1.StorageContainer{s.container(defaultContainer)}}, nil
}

func (s containerService) GetContainer(ctx context.Context, req *acliv1.GetContainerRequest) (*acliv1.StorageContainer, error) {
	s.m.mu.RLock()
	defer s.m.mu.RUnlock()
	c := s.container(defaultContainer)
	if req.Container != c.Name && req.Container != c.Uuid {
		return nil, apierr.NotFound("container", req.Container, []string{defaultContainer})
	}
	return c, nil
}

// ---- ImageService ----

// imageService is the image feature behind manager/rpc's adapter.
type imageService struct {
	m *Manager
}

func (s imageService) ListImages(ctx context.Context, _ *acliv1.ListImagesRequest) (*acliv1.ListImagesResponse, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := &acliv1.ListImagesResponse{}
	for _, r := range m.imgs.images {
		out.Images = append(out.Images, r.pb)
	}
	slices.SortFunc(out.Images, func(a, b *acliv1.Image) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Uuid, b.Uuid))
	})
	return out, nil
}

func (s imageService) GetImage(ctx context.Context, req *acliv1.GetImageRequest) (*acliv1.Image, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, err := m.imageLocked("image", req.Image)
	if err != nil {
		return nil, err
	}
	return r.pb, nil
}

func checkSourceURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return fmt.Errorf("source_url is required, e.g. source_url=http://10.0.0.5/images/debian.qcow2")
	case err != nil:
		return fmt.Errorf("source_url %q: %v", s, err)
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file":
		return fmt.Errorf("source_url %q: scheme must be http, https or file", s)
	case u.Scheme == "file" && !strings.HasPrefix(u.Path, "/"):
		return fmt.Errorf("source_url %q: a file URL needs an absolute path, e.g. file:///srv/img.qcow2", s)
	case u.Scheme != "file" && u.Host == "":
		return fmt.Errorf("source_url %q has no host", s)
	}
	return nil
}

// CreateImage imports the image as a task reporting bytes read. The image
// is recorded, active, only when its volume is complete.
func (s imageService) CreateImage(ctx context.Context, req *acliv1.CreateImageRequest) (*acliv1.Task, error) {
	m := s.m
	var bad []apierr.Field
	if err := state.CheckName("image", req.Name); err != nil {
		bad = append(bad, apierr.Field{Field: "name", Description: err.Error()})
	}
	if err := checkSourceURL(req.SourceUrl); err != nil {
		bad = append(bad, apierr.Field{Field: "source_url", Description: err.Error()})
	}
	if _, ok := acliv1.ImageType_name[int32(req.ImageType)]; !ok || req.ImageType == acliv1.ImageType_IMAGE_TYPE_UNSPECIFIED {
		bad = append(bad, apierr.Field{Field: "image_type", Description: "image_type is required: kDiskImage or kIsoImage"})
	}
	if len(bad) > 0 {
		return nil, apierr.InvalidArgument(bad...)
	}
	im := &acliv1.Image{
		Uuid: uuid.NewString(), Name: req.Name, ImageType: req.ImageType, SourceUrl: req.SourceUrl,
		Annotation: req.Annotation, State: acliv1.ImageState_kActive, CreateTime: timestamppb.Now(),
	}
	m.mu.Lock()
	container, err := m.containerLocked(req.Container)
	if err == nil {
		if other := m.imgs.byName[req.Name]; other != nil {
			err = apierr.AlreadyExists("image", req.Name, "image names are unique (uuid "+other.pb.Uuid+")")
		} else if t := m.busy["image-name:"+req.Name]; t != nil {
			err = apierr.Busy("image", req.Name, t.PB.Uuid, t.PB.Operation.String())
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	im.Container, im.VmdiskUuid = container, im.Uuid
	t := m.newTaskLocked(acliv1.TaskOperation_kImageCreate, []*acliv1.EntityRef{imageRef(im)}, im.Uuid, "image-name:"+req.Name)
	t.PB.Cancellable = true // the import undoes itself when stopped
	m.mu.Unlock()
	st := m.storageDriver()
	return m.launch(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		if st == nil {
			return outcome{}, fmt.Errorf("driver %s keeps no images", m.drv.Name())
		}
		last := int64(-1)
		res, err := st.ImportImage(ctx, container, im.Uuid, im.SourceUrl, req.ChecksumSha256, func(done, total int64) {
			// A progress update per 1% (or per 64 MiB when the size is unknown).
			step := int64(64 << 20)
			if total > 0 {
				step = max(total/100, 1)
			}
			if done/step == last && done != total {
				return
			}
			last = done / step
			pct := int32(0)
			if total > 0 {
				pct = int32(min(99, done*100/total))
			}
			m.progress(t, pct, "%s of %s read from %s", scheduler.Bytes(done), scheduler.Bytes(max(total, done)), im.SourceUrl)
		})
		if err != nil {
			return outcome{}, fmt.Errorf("import image %s: %w", im.Name, err)
		}
		m.pastReturn(t)
		im.SizeBytes, im.ChecksumSha256, im.SourceFormat = res.Size, res.SHA256, res.SourceFormat
		m.mu.RLock()
		err = m.checkCapacityLocked(container, im.SizeBytes, "image "+im.Name)
		m.mu.RUnlock()
		if err != nil {
			st.DeleteVolume(context.WithoutCancel(ctx), container, im.Uuid)
			return outcome{}, err
		}
		return outcome{
			writes:  []write{{key: imageKey(im.Uuid), msg: im, rev: 0}},
			apply:   func(rev int64) { m.putImageLocked(im, rev) },
			message: fmt.Sprintf("image %s imported (%s %s, sha256 %s)", im.Name, scheduler.Bytes(im.SizeBytes), im.SourceFormat, im.ChecksumSha256),
			// An import whose record is refused leaves no half image.
			undo: func() { st.DeleteVolume(context.WithoutCancel(ctx), container, im.Uuid) },
		}, nil
	})
}

func (s imageService) UpdateImage(ctx context.Context, req *acliv1.UpdateImageRequest) (*acliv1.Task, error) {
	m := s.m
	if req.Name == nil && req.Annotation == nil && req.ImageType == acliv1.ImageType_IMAGE_TYPE_UNSPECIFIED {
		return nil, apierr.BadField("image", "nothing to update: give name, annotation or image_type")
	}
	if req.Name != nil {
		if err := state.CheckName("image", *req.Name); err != nil {
			return nil, apierr.BadField("name", "%v", err)
		}
	}
	if _, ok := acliv1.ImageType_name[int32(req.ImageType)]; !ok {
		return nil, apierr.BadField("image_type", "image_type %d is unknown: kDiskImage or kIsoImage", req.ImageType)
	}
	m.mu.Lock()
	r, err := m.imageLocked("image", req.Image)
	if err == nil {
		err = m.checkBusyLocked("image", r.pb.Name, r.pb.Uuid)
	}
	if err == nil && req.Name != nil && *req.Name != r.pb.Name {
		if other := m.imgs.byName[*req.Name]; other != nil {
			err = apierr.AlreadyExists("image", *req.Name, "image names are unique (uuid "+other.pb.Uuid+")")
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := r.pb, r.rev
	next := proto.Clone(cur).(*acliv1.Image)
	if req.Name != nil {
		next.Name = *req.Name
	}
	if req.Annotation != nil {
		next.Annotation = *req.Annotation
	}
	if req.ImageType != acliv1.ImageType_IMAGE_TYPE_UNSPECIFIED {
		next.ImageType = req.ImageType
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kImageUpdate, []*acliv1.EntityRef{imageRef(cur)}, cur.Uuid)
	m.mu.Unlock()
	return m.quick(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: imageKey(cur.Uuid), msg: next, rev: rev}},
			apply:   func(rev int64) { m.putImageLocked(next, rev) },
			message: fmt.Sprintf("image %s updated", next.Name),
		}, nil
	})
}

// DeleteImage removes the image, then its volume. Disks cloned from it
// hold their own copy of its data and keep working.
func (s imageService) DeleteImage(ctx context.Context, req *acliv1.DeleteImageRequest) (*acliv1.Task, error) {
	m := s.m
	return deleteRecord(ctx, m, "image", deletion[*acliv1.Image]{
		op: acliv1.TaskOperation_kImageDelete,
		find: func() (*acliv1.Image, int64, error) {
			r, err := m.imageLocked("image", req.Image)
			if err != nil {
				return nil, 0, err
			}
			return r.pb, r.rev, nil
		},
		ref:    imageRef,
		key:    func(im *acliv1.Image) string { return imageKey(im.Uuid) },
		forget: func(im *acliv1.Image) { m.deleteImageLocked(im.Uuid) },
		volumes: func(im *acliv1.Image) []*acliv1.Disk {
			return []*acliv1.Disk{{Uuid: im.Uuid, Container: im.Container, SizeBytes: im.SizeBytes}}
		},
		message: func(im *acliv1.Image) string { return fmt.Sprintf("image %s deleted", im.Name) },
	})
}
