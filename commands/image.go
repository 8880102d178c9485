package commands

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
)

var imageTypes = []EnumValue{
	{Name: "kDiskImage", Aliases: []string{"disk", "DISK_IMAGE"}, Value: int32(acliv1.ImageType_kDiskImage)},
	{Name: "kIsoImage", Aliases: []string{"iso", "ISO_IMAGE"}, Value: int32(acliv1.ImageType_kIsoImage)},
}

func imageCommands() []*Command {
	imgArg := Arg{Name: "image", Kind: KindImage, Many: true, Help: "image name or UUID"}
	return []*Command{
		{
			Name:    "image.create",
			Summary: "Import images from http(s) or file URLs into a storage container",
			Args:    []Arg{{Name: "name", Kind: KindImage, Generate: true, Help: "name of the new image"}},
			Keys: []Key{
				{Name: "source_url", Type: TypeString, Required: true, Help: "http://, https:// or file:// URL of a raw, qcow2 or ISO image", Example: "http://10.0.0.5/debian.qcow2"},
				{Name: "image_type", Type: TypeEnum, Enum: imageTypes, Required: true, Help: "what the image holds"},
				{Name: "container", Type: TypeString, Help: "storage container (default default-container)", Example: "default-container"},
				{Name: "annotation", Type: TypeString, Help: "free text", Example: "Debian 12"},
				{Name: "checksum_sha256", Type: TypeString, Help: "expected SHA-256 of the source; a mismatch fails the import"},
			},
			Output:   OutputTask,
			Examples: []string{"image.create debian12 source_url=http://10.0.0.5/debian.qcow2 container=default-container image_type=kDiskImage"},
			Run:      runImageCreate,
		},
		{
			Name:     "image.list",
			Summary:  "List images",
			Args:     []Arg{{Name: "pattern", Kind: KindImage, Many: true, Optional: true, Filter: true, Help: "only the images these name (image name or UUID; globs, ranges and comma lists)"}},
			Output:   OutputTable,
			Examples: []string{"image.list"},
			Run:      runImageList,
		},
		{
			Name:     "image.get",
			Summary:  "Show images in detail",
			Args:     []Arg{imgArg},
			Output:   OutputBlock,
			Examples: []string{"image.get debian12"},
			Run:      runImageGet,
		},
		{
			Name:    "image.update",
			Summary: "Rename an image or change its annotation or type",
			Args:    []Arg{{Name: "image", Kind: KindImage, Help: "image name or UUID"}},
			Keys: []Key{
				{Name: "name", Type: TypeString, Help: "new name", Example: "debian12-base"},
				{Name: "annotation", Type: TypeString, Help: "new annotation", Example: "Debian 12"},
				{Name: "image_type", Type: TypeEnum, Enum: imageTypes, Help: "new type"},
			},
			Output:   OutputTask,
			Examples: []string{"image.update debian12 annotation=Debian-12.8"},
			Run:      runImageUpdate,
		},
		{
			Name:        "image.delete",
			Summary:     "Delete images (disks cloned from them keep their data)",
			Args:        []Arg{imgArg},
			Destructive: "Delete",
			Output:      OutputTask,
			Examples:    []string{"image.delete debian12", "-y image.delete test*"},
			Run:         runImageDelete,
		},
	}
}

func containerCommands() []*Command {
	return []*Command{
		{
			Name:     "container.list",
			Summary:  "List storage containers with their capacity and use",
			Args:     []Arg{{Name: "pattern", Kind: KindContainer, Many: true, Optional: true, Filter: true, Help: "only the containers these name (container name or UUID; globs, ranges and comma lists)"}},
			Output:   OutputTable,
			Examples: []string{"container.list"},
			Run:      runContainerList,
		},
		{
			Name:     "container.get",
			Summary:  "Show storage containers in detail",
			Args:     []Arg{{Name: "container", Kind: KindContainer, Many: true, Help: "container name or UUID"}},
			Output:   OutputBlock,
			Examples: []string{"container.get default-container"},
			Run:      runContainerGet,
		},
	}
}

func runImageCreate(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.Image.CreateImage(ctx, &acliv1.CreateImageRequest{
			Name: t.ID, SourceUrl: r.String("source_url"), Container: r.String("container"),
			ImageType: acliv1.ImageType(r.Int("image_type")), Annotation: r.String("annotation"),
			ChecksumSha256: r.String("checksum_sha256"),
		})
	})
}

func runImageList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Image.ListImages(ctx, &acliv1.ListImagesRequest{})
	if err != nil {
		return err
	}
	images := filterRows(r, resp.GetImages())
	return r.Print(render.Doc{Data: images, Table: imageTable(images)})
}

func runImageGet(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	return getEach(ctx, r, r.Targets(0), func(ctx context.Context, id string) (*acliv1.Image, error) {
		return c.Image.GetImage(ctx, &acliv1.GetImageRequest{Image: id})
	}, imageBlock)
}

func runImageUpdate(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		req := &acliv1.UpdateImageRequest{Image: t.ID, ImageType: acliv1.ImageType(r.Int("image_type"))}
		if r.Has("name") {
			n := r.String("name")
			req.Name = &n
		}
		if r.Has("annotation") {
			a := r.String("annotation")
			req.Annotation = &a
		}
		return c.Image.UpdateImage(ctx, req)
	})
}

func runImageDelete(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.Image.DeleteImage(ctx, &acliv1.DeleteImageRequest{Image: t.ID})
	})
}

func runContainerList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Container.ListContainers(ctx, &acliv1.ListContainersRequest{})
	if err != nil {
		return err
	}
	containers := filterRows(r, resp.GetContainers())
	return r.Print(render.Doc{Data: containers, Table: containerTable(containers)})
}

func runContainerGet(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	return getEach(ctx, r, r.Targets(0), func(ctx context.Context, id string) (*acliv1.StorageContainer, error) {
		return c.Container.GetContainer(ctx, &acliv1.GetContainerRequest{Container: id})
	}, containerBlock)
}

func imageTable(imgs []*acliv1.Image) *render.TableData {
	t := &render.TableData{Headers: []string{"Image name", "Image type", "Image UUID", "Size", "Container", "Source format"}}
	for _, im := range imgs {
		t.Rows = append(t.Rows, []string{im.GetName(), enumText(im.GetImageType().String(), im.GetImageType() == 0), im.GetUuid(),
			FormatSize(im.GetSizeBytes()), im.GetContainer(), im.GetSourceFormat()})
	}
	return t
}

func imageBlock(im *acliv1.Image) *render.Block {
	b := &render.Block{}
	b.Add("Name", im.GetName()).
		Add("UUID", im.GetUuid()).
		Add("Image type", enumText(im.GetImageType().String(), im.GetImageType() == 0)).
		Add("State", enumText(im.GetState().String(), im.GetState() == 0)).
		Add("Container", im.GetContainer()).
		Add("Size", FormatSize(im.GetSizeBytes())).
		Add("Source URL", im.GetSourceUrl()).
		Add("Source format", im.GetSourceFormat()).
		Add("SHA-256", im.GetChecksumSha256()).
		Add("vmdisk UUID", im.GetVmdiskUuid()).
		Add("Annotation", im.GetAnnotation()).
		Add("Created", ts(im.GetCreateTime()))
	return b
}

func containerTable(cs []*acliv1.StorageContainer) *render.TableData {
	t := &render.TableData{Headers: []string{"Container name", "Container UUID", "Capacity", "Used", "Free", "vDisks", "Images"}}
	for _, c := range cs {
		t.Rows = append(t.Rows, []string{c.GetName(), c.GetUuid(), FormatSize(c.GetCapacityBytes()), FormatSize(c.GetUsedBytes()),
			FormatSize(max(c.GetCapacityBytes()-c.GetUsedBytes(), 0)), i32(c.GetNumVdisks()), i32(c.GetNumImages())})
	}
	return t
}

func containerBlock(c *acliv1.StorageContainer) *render.Block {
	b := &render.Block{}
	b.Add("Name", c.GetName()).
		Add("UUID", c.GetUuid()).
		Add("Capacity", FormatSize(c.GetCapacityBytes())).
		Add("Used", FormatSize(c.GetUsedBytes())).
		Add("Free", FormatSize(max(c.GetCapacityBytes()-c.GetUsedBytes(), 0))).
		Add("vDisks", i32(c.GetNumVdisks())).
		Add("Images", i32(c.GetNumImages()))
	return b
}
