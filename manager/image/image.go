package image

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
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/storage"
	"github.com/acli-dev/acli/manager/tasks"
)

// Images are volumes of their own (sparse copies, manager/storage/volume):
// a disk cloned from an image copies it, so deleting the image never
// strands the disk.

// Ref is an image's entity reference.
func Ref(im *acliv1.Image) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kImage, Uuid: im.Uuid, Name: im.Name}
}

// nameLock is held by a task giving an image its name, so two cannot take
// one name at once.
func nameLock(name string) string { return "image-name:" + name }

func (s *Service) ListImages(ctx context.Context, _ *acliv1.ListImagesRequest) (*acliv1.ListImagesResponse, error) {
	out := &acliv1.ListImagesResponse{}
	s.DB.View(func(tx *state.Tx) { out.Images = tx.Images() })
	slices.SortFunc(out.Images, func(a, b *acliv1.Image) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Uuid, b.Uuid))
	})
	return out, nil
}

func (s *Service) GetImage(ctx context.Context, req *acliv1.GetImageRequest) (im *acliv1.Image, err error) {
	s.DB.View(func(tx *state.Tx) { im, err = storage.FindImage(tx, "image", req.Image) })
	return im, err
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
// is recorded, active, only when its volume is complete; a cancelled or
// failed import, or one whose record is refused, leaves no volume.
func (s *Service) CreateImage(ctx context.Context, req *acliv1.CreateImageRequest) (*acliv1.Task, error) {
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
	container, err := s.Volumes.Container(req.Container)
	if err != nil {
		return nil, err
	}
	im := &acliv1.Image{
		Uuid: uuid.NewString(), Name: req.Name, ImageType: req.ImageType, SourceUrl: req.SourceUrl,
		Annotation: req.Annotation, State: acliv1.ImageState_kActive, CreateTime: timestamppb.Now(),
		Container: container,
	}
	im.VmdiskUuid = im.Uuid
	t, err := s.Tasks.Begin(ctx, func(h Held) (Start, error) {
		var other *acliv1.Image
		s.DB.View(func(tx *state.Tx) { other = storage.ImageNamed(tx, req.Name) })
		if other != nil {
			return Start{}, apierr.AlreadyExists("image", req.Name, "image names are unique (uuid "+other.Uuid+")")
		}
		if t := h.Changing(nameLock(req.Name)); t != nil {
			return Start{}, busy("image", req.Name, t)
		}
		return Start{Op: acliv1.TaskOperation_kImageCreate, Refs: []*acliv1.EntityRef{Ref(im)},
			Locks: []string{im.Uuid, nameLock(req.Name)}, Cancellable: true}, nil
	})
	if err != nil {
		return nil, err
	}
	vol := []*acliv1.Disk{{Uuid: im.Uuid, Container: container}}
	return s.Tasks.Launch(ctx, t, func(ctx context.Context, t *tasks.Task) (Outcome, error) {
		last := int64(-1)
		res, err := s.Volumes.Import(ctx, container, im.Uuid, im.SourceUrl, req.ChecksumSha256, func(done, total int64) {
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
			s.Tasks.Progress(t, pct, fmt.Sprintf("%s of %s read from %s", scheduler.Bytes(done), scheduler.Bytes(max(total, done)), im.SourceUrl))
		})
		if err != nil {
			return Outcome{}, fmt.Errorf("import image %s: %w", im.Name, err)
		}
		s.Tasks.PastReturn(t)
		im.SizeBytes, im.ChecksumSha256, im.SourceFormat = res.Size, res.SHA256, res.SourceFormat
		vol[0].SizeBytes = im.SizeBytes
		if err := s.Volumes.Fits(container, im.SizeBytes, "image "+im.Name); err != nil {
			s.Volumes.Remove(context.WithoutCancel(ctx), vol)
			return Outcome{}, err
		}
		return Outcome{
			Writes:  []state.Write{{Key: state.ImageKey(im.Uuid), Msg: im, Rev: 0}},
			Message: fmt.Sprintf("image %s imported (%s %s, sha256 %s)", im.Name, scheduler.Bytes(im.SizeBytes), im.SourceFormat, im.ChecksumSha256),
			// An import whose record is refused leaves no half image.
			Undo: func() { s.Volumes.Remove(context.WithoutCancel(ctx), vol) },
		}, nil
	})
}

func (s *Service) UpdateImage(ctx context.Context, req *acliv1.UpdateImageRequest) (*acliv1.Task, error) {
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
	var cur *acliv1.Image
	var err error
	s.DB.View(func(tx *state.Tx) { cur, err = storage.FindImage(tx, "image", req.Image) })
	if err != nil {
		return nil, err
	}
	q, err := s.Quick.Begin(ctx, "image", acliv1.TaskOperation_kImageUpdate, []*acliv1.EntityRef{Ref(cur)}, cur.Uuid)
	if err != nil {
		return nil, err
	}
	rename := req.Name != nil && *req.Name != cur.Name
	if rename {
		if other, ok := q.Hold(nameLock(*req.Name)); !ok {
			q.Drop()
			return nil, apierr.Busy("image name", *req.Name, other, "")
		}
	}
	// Read again once held: a task that held it before has ended.
	var rev int64
	var other *acliv1.Image
	s.DB.View(func(tx *state.Tx) {
		if cur = tx.Image(cur.Uuid); cur != nil {
			rev = tx.Rev(state.ImageKey(cur.Uuid))
			if rename {
				other = storage.ImageNamed(tx, *req.Name)
			}
		}
	})
	switch {
	case cur == nil:
		q.Drop()
		return nil, apierr.NotFound("image", req.Image, nil)
	case other != nil && other.Uuid != cur.Uuid:
		q.Drop()
		return nil, apierr.AlreadyExists("image", *req.Name, "image names are unique (uuid "+other.Uuid+")")
	}
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
	return q.Commit(ctx, []state.Write{{Key: state.ImageKey(cur.Uuid), Msg: next, Rev: rev}}, fmt.Sprintf("image %s updated", next.Name))
}

// DeleteImage removes the image, then its volume. Disks cloned from it
// hold their own copy of its data and keep working.
func (s *Service) DeleteImage(ctx context.Context, req *acliv1.DeleteImageRequest) (*acliv1.Task, error) {
	return deleteRecord(ctx, s, req.Image, deletion[*acliv1.Image]{
		op:   acliv1.TaskOperation_kImageDelete,
		kind: "image",
		find: func(tx *state.Tx, ref string) (*acliv1.Image, error) { return storage.FindImage(tx, "image", ref) },
		ref:  Ref,
		key:  func(im *acliv1.Image) string { return state.ImageKey(im.Uuid) },
		volumes: func(im *acliv1.Image) []*acliv1.Disk {
			return []*acliv1.Disk{{Uuid: im.Uuid, Container: im.Container, SizeBytes: im.SizeBytes}}
		},
		message: func(im *acliv1.Image) string { return fmt.Sprintf("image %s deleted", im.Name) },
	})
}
