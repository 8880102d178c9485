package rpc

import (
	"context"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Images are the image service's disk and ISO images.
type Images interface {
	ListImages(context.Context, *acliv1.ListImagesRequest) (*acliv1.ListImagesResponse, error)
	GetImage(context.Context, *acliv1.GetImageRequest) (*acliv1.Image, error)
	CreateImage(context.Context, *acliv1.CreateImageRequest) (*acliv1.Task, error)
	UpdateImage(context.Context, *acliv1.UpdateImageRequest) (*acliv1.Task, error)
	DeleteImage(context.Context, *acliv1.DeleteImageRequest) (*acliv1.Task, error)
}

type imageServer struct {
	acliv1.UnsafeImageServiceServer
	f Images
}

func registerImages(s grpc.ServiceRegistrar, f Images) {
	acliv1.RegisterImageServiceServer(s, imageServer{f: f})
}

func (s imageServer) ListImages(ctx context.Context, req *acliv1.ListImagesRequest) (*acliv1.ListImagesResponse, error) {
	return reply(s.f.ListImages(ctx, req))
}

func (s imageServer) GetImage(ctx context.Context, req *acliv1.GetImageRequest) (*acliv1.Image, error) {
	return reply(s.f.GetImage(ctx, req))
}

func (s imageServer) CreateImage(ctx context.Context, req *acliv1.CreateImageRequest) (*acliv1.Task, error) {
	return reply(s.f.CreateImage(ctx, req))
}

func (s imageServer) UpdateImage(ctx context.Context, req *acliv1.UpdateImageRequest) (*acliv1.Task, error) {
	return reply(s.f.UpdateImage(ctx, req))
}

func (s imageServer) DeleteImage(ctx context.Context, req *acliv1.DeleteImageRequest) (*acliv1.Task, error) {
	return reply(s.f.DeleteImage(ctx, req))
}
