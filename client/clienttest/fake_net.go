package clienttest

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// The network feature's calls: pools and DNS are recorded as given (the
// manager checks them), NICs listed per network, vs0 as AHV sets it up.

func (s netSvc) AddDhcpPool(_ context.Context, r *acliv1.AddDhcpPoolRequest) (*acliv1.Task, error) {
	s.f.count("AddDhcpPool")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	n, err := s.f.network(r.GetNetwork())
	if err != nil {
		return nil, err
	}
	n.DhcpPools = append(n.DhcpPools, &acliv1.DhcpPool{Start: r.GetStart(), End: r.GetEnd()})
	return s.f.newTask(acliv1.TaskOperation_kNetworkUpdate, acliv1.EntityKind_kNetwork, n.Uuid, n.Name), nil
}

func (s netSvc) UpdateDhcpDns(_ context.Context, r *acliv1.UpdateDhcpDnsRequest) (*acliv1.Task, error) {
	s.f.count("UpdateDhcpDns")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	n, err := s.f.network(r.GetNetwork())
	if err != nil {
		return nil, err
	}
	split := func(v string) []string {
		return slices.DeleteFunc(strings.Split(v, ","), func(s string) bool { return s == "" })
	}
	if r.Servers != nil {
		n.DnsServers = split(r.GetServers())
	}
	if r.Domains != nil {
		n.DnsDomains = split(r.GetDomains())
	}
	return s.f.newTask(acliv1.TaskOperation_kNetworkUpdate, acliv1.EntityKind_kNetwork, n.Uuid, n.Name), nil
}

func (s netSvc) ListNetworkVms(_ context.Context, r *acliv1.ListNetworkVmsRequest) (*acliv1.ListNetworkVmsResponse, error) {
	s.f.count("ListNetworkVms")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	n, err := s.f.network(r.GetNetwork())
	if err != nil {
		return nil, err
	}
	out := &acliv1.ListNetworkVmsResponse{}
	for _, v := range s.f.vms {
		for _, nic := range v.Nics {
			if nic.NetworkUuid == n.Uuid {
				out.Vms = append(out.Vms, &acliv1.NetworkVm{VmUuid: v.Uuid, VmName: v.Name, Mac: nic.Mac, Ip: nic.Ip})
			}
		}
	}
	slices.SortFunc(out.Vms, func(a, b *acliv1.NetworkVm) int { return strings.Compare(a.VmName+a.Mac, b.VmName+b.Mac) })
	return out, nil
}

func (s netSvc) GetVirtualSwitch(_ context.Context, r *acliv1.GetVirtualSwitchRequest) (*acliv1.VirtualSwitch, error) {
	s.f.count("GetVirtualSwitch")
	if r.GetName() != "" && r.GetName() != "vs0" {
		return nil, status.Errorf(codes.NotFound, "virtual switch %q not found (did you mean \"vs0\"?)", r.GetName())
	}
	return proto.Clone(&acliv1.VirtualSwitch{Name: "vs0", BridgeName: "br0", Mtu: 1500, BondType: "kActiveBackup",
		Uplinks: []string{"eth0", "eth1"}, LogicalTimestamp: 1,
		ActiveUplinks: []*acliv1.HostUplink{{HostUuid: "00000000-0000-4000-8000-00000000a001", HostName: "node-1", Interface: "eth1"}},
	}).(*acliv1.VirtualSwitch), nil
}

func (s vmSvc) UpdateNic(_ context.Context, r *acliv1.UpdateNicRequest) (*acliv1.Task, error) {
	s.f.count("UpdateNic")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	v, err := s.f.vm(r.GetVm())
	if err != nil {
		return nil, err
	}
	for _, n := range v.Nics {
		if strings.EqualFold(n.Mac, r.GetMac()) {
			if r.GetVlanMode() != 0 {
				n.VlanMode = r.GetVlanMode()
			}
			if r.GetTrunkedNetworksSet() {
				n.TrunkedNetworks = r.GetTrunkedNetworks()
			}
			if r.Connected != nil {
				n.Disconnected = !r.GetConnected()
			}
			return s.f.newTask(acliv1.TaskOperation_kVmNicUpdate, acliv1.EntityKind_kVm, v.Uuid, v.Name), nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "VM %s has no NIC %s", v.Name, r.GetMac())
}
