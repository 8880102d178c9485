package rpc

import (
	"context"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Sim injects host and CVM faults (the sim driver only).
type Sim interface {
	FailHost(context.Context, *acliv1.SimHostRequest) (*acliv1.SimResponse, error)
	RecoverHost(context.Context, *acliv1.SimHostRequest) (*acliv1.SimResponse, error)
	FailCvm(context.Context, *acliv1.SimHostRequest) (*acliv1.SimResponse, error)
	RecoverCvm(context.Context, *acliv1.SimHostRequest) (*acliv1.SimResponse, error)
	SetDirtyRate(context.Context, *acliv1.SimDirtyRateRequest) (*acliv1.SimDirtyRateResponse, error)
}

type simServer struct {
	acliv1.UnsafeSimServiceServer
	f Sim
}

func registerSim(s grpc.ServiceRegistrar, f Sim) {
	acliv1.RegisterSimServiceServer(s, simServer{f: f})
}

func (s simServer) FailHost(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return reply(s.f.FailHost(ctx, req))
}

func (s simServer) RecoverHost(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return reply(s.f.RecoverHost(ctx, req))
}

func (s simServer) FailCvm(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return reply(s.f.FailCvm(ctx, req))
}

func (s simServer) RecoverCvm(ctx context.Context, req *acliv1.SimHostRequest) (*acliv1.SimResponse, error) {
	return reply(s.f.RecoverCvm(ctx, req))
}
