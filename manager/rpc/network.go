package rpc

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/network"
	"github.com/acli-dev/acli/manager/state"
)

// Networks are the VM networks.
type Networks interface {
	ListNetworks(context.Context, *acliv1.ListNetworksRequest) (*acliv1.ListNetworksResponse, error)
	GetNetwork(context.Context, *acliv1.GetNetworkRequest) (*acliv1.Network, error)
	// CreateNetwork gets a checked request: a valid name, VLAN and mode,
	// the vswitch defaulted and ip_config a valid gateway/prefix.
	CreateNetwork(context.Context, *acliv1.CreateNetworkRequest) (*acliv1.Task, error)
	DeleteNetwork(context.Context, *acliv1.DeleteNetworkRequest) (*acliv1.Task, error)
	AddDhcpPool(context.Context, *acliv1.AddDhcpPoolRequest) (*acliv1.Task, error)
	UpdateDhcpDns(context.Context, *acliv1.UpdateDhcpDnsRequest) (*acliv1.Task, error)
	ListNetworkVms(context.Context, *acliv1.ListNetworkVmsRequest) (*acliv1.ListNetworkVmsResponse, error)
	GetVirtualSwitch(context.Context, *acliv1.GetVirtualSwitchRequest) (*acliv1.VirtualSwitch, error)
	UpdateVirtualSwitch(context.Context, *acliv1.UpdateVirtualSwitchRequest) (*acliv1.Task, error)
}

type networkServer struct {
	acliv1.UnsafeNetworkServiceServer
	f Networks
}

func registerNetworks(s grpc.ServiceRegistrar, f Networks) {
	acliv1.RegisterNetworkServiceServer(s, networkServer{f: f})
}

func (s networkServer) ListNetworks(ctx context.Context, req *acliv1.ListNetworksRequest) (*acliv1.ListNetworksResponse, error) {
	return reply(s.f.ListNetworks(ctx, req))
}

func (s networkServer) GetNetwork(ctx context.Context, req *acliv1.GetNetworkRequest) (*acliv1.Network, error) {
	return reply(s.f.GetNetwork(ctx, req))
}

func (s networkServer) CreateNetwork(ctx context.Context, req *acliv1.CreateNetworkRequest) (*acliv1.Task, error) {
	if err := checkCreateNetwork(req); err != nil {
		return nil, err
	}
	return reply(s.f.CreateNetwork(ctx, req))
}

// checkCreateNetwork reports every bad field at once and fills defaults.
func checkCreateNetwork(req *acliv1.CreateNetworkRequest) error {
	var bad []apierr.Field
	if err := state.CheckName("network", req.Name); err != nil {
		bad = append(bad, apierr.Field{Field: "name", Description: err.Error()})
	}
	if req.VlanId < 0 || req.VlanId > 4094 {
		bad = append(bad, apierr.Field{Field: "vlan_id", Description: fmt.Sprintf("vlan %d is out of range; use 0 (native) to 4094", req.VlanId)})
	}
	if req.Mode == acliv1.NetworkMode_NETWORK_MODE_UNSPECIFIED {
		req.Mode = acliv1.NetworkMode_kAccess
	} else if _, ok := acliv1.NetworkMode_name[int32(req.Mode)]; !ok {
		bad = append(bad, apierr.Field{Field: "mode", Description: fmt.Sprintf("network mode %d is unknown; use kAccess or kTrunked", req.Mode)})
	}
	if req.VswitchName == "" {
		req.VswitchName = "vs0"
	}
	if req.IpConfig != "" {
		// Checked here, split by the feature: the address is the gateway.
		if _, _, err := network.ParseIPConfig(req.IpConfig); err != nil {
			bad = append(bad, apierr.Field{Field: "ip_config", Description: status.Convert(err).Message()})
		}
	}
	if len(bad) > 0 {
		return apierr.InvalidArgument(bad...)
	}
	return nil
}

func (s networkServer) DeleteNetwork(ctx context.Context, req *acliv1.DeleteNetworkRequest) (*acliv1.Task, error) {
	return reply(s.f.DeleteNetwork(ctx, req))
}

func (s networkServer) AddDhcpPool(ctx context.Context, req *acliv1.AddDhcpPoolRequest) (*acliv1.Task, error) {
	return reply(s.f.AddDhcpPool(ctx, req))
}

func (s networkServer) UpdateDhcpDns(ctx context.Context, req *acliv1.UpdateDhcpDnsRequest) (*acliv1.Task, error) {
	return reply(s.f.UpdateDhcpDns(ctx, req))
}

func (s networkServer) ListNetworkVms(ctx context.Context, req *acliv1.ListNetworkVmsRequest) (*acliv1.ListNetworkVmsResponse, error) {
	return reply(s.f.ListNetworkVms(ctx, req))
}

func (s networkServer) GetVirtualSwitch(ctx context.Context, req *acliv1.GetVirtualSwitchRequest) (*acliv1.VirtualSwitch, error) {
	return reply(s.f.GetVirtualSwitch(ctx, req))
}

func (s networkServer) UpdateVirtualSwitch(ctx context.Context, req *acliv1.UpdateVirtualSwitchRequest) (*acliv1.Task, error) {
	return reply(s.f.UpdateVirtualSwitch(ctx, req))
}
