package manager

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/network"
)

// The network feature: networks and their address plans, NIC addresses,
// the virtual switch. Its rules live in manager/network.

// networkService is the network feature behind manager/rpc's adapter.
type networkService struct {
	m *Manager
}

// vswitchPrefix holds the virtual switches changed from their defaults.
const vswitchPrefix = "/vswitches/"

type vswitchRec struct {
	pb  *acliv1.VirtualSwitch
	rev int64
}

func (m *Manager) putVswitchLocked(vs *acliv1.VirtualSwitch, rev int64) {
	m.vswitches[vs.Name] = &vswitchRec{pb: vs, rev: rev}
}

// nicIPKey indexes a NIC address within its network.
func nicIPKey(network, ip string) string { return network + "/" + ip }

// lockMoreLocked adds a lock to a running task, released with its others.
func (m *Manager) lockMoreLocked(t *taskRec, key string) {
	t.Locks = append(t.Locks, key)
	m.busy[key] = t
}

func (s networkService) ListNetworks(ctx context.Context, _ *acliv1.ListNetworksRequest) (*acliv1.ListNetworksResponse, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := &acliv1.ListNetworksResponse{}
	for _, n := range m.networks {
		out.Networks = append(out.Networks, m.networkOut(n))
	}
	slices.SortFunc(out.Networks, func(a, b *acliv1.Network) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s networkService) GetNetwork(ctx context.Context, req *acliv1.GetNetworkRequest) (*acliv1.Network, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	n, err := m.networkLocked("network", req.Network)
	if err != nil {
		return nil, err
	}
	return m.networkOut(n), nil
}

func (s networkService) CreateNetwork(ctx context.Context, req *acliv1.CreateNetworkRequest) (*acliv1.Task, error) {
	m := s.m // the request is checked (manager/rpc)
	n := &acliv1.Network{
		Uuid: uuid.NewString(), Name: req.Name, VlanId: req.VlanId, Mode: req.Mode, VswitchName: req.VswitchName,
	}
	if req.IpConfig != "" {
		p, gw, err := network.ParseIPConfig(req.IpConfig)
		if err != nil {
			return nil, err
		}
		n.IpConfig = p.String()
		if gw.IsValid() {
			n.DefaultGateway = gw.String()
		}
	}
	m.mu.Lock()
	if other := m.netByName[n.Name]; other != nil {
		m.mu.Unlock()
		return nil, apierr.AlreadyExists("network", n.Name, "network names are unique (uuid "+other.pb.Uuid+")")
	}
	if t := m.busy["network-name:"+n.Name]; t != nil {
		m.mu.Unlock()
		return nil, apierr.Busy("network", n.Name, t.PB.Uuid, t.PB.Operation.String())
	}
	t := m.newTaskLocked(acliv1.TaskOperation_kNetworkCreate, []*acliv1.EntityRef{networkRef(n)}, n.Uuid, "network-name:"+n.Name)
	m.mu.Unlock()
	return m.quick(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: networkKey(n.Uuid), msg: n, rev: 0}},
			apply:   func(rev int64) { m.putNetworkLocked(n, rev) },
			message: fmt.Sprintf("network %s created (vlan %d)", n.Name, n.VlanId),
		}, nil
	})
}

func (s networkService) DeleteNetwork(ctx context.Context, req *acliv1.DeleteNetworkRequest) (*acliv1.Task, error) {
	m := s.m
	m.mu.Lock()
	n, err := m.networkLocked("network", req.Network)
	if err == nil {
		err = m.checkBusyLocked("network", n.pb.Name, n.pb.Uuid)
	}
	if err == nil && m.nicCount[n.pb.Uuid] > 0 {
		var vs []apierr.Violation
		for _, v := range m.vms {
			for _, nic := range v.pb.Nics {
				if nic.NetworkUuid == n.pb.Uuid {
					vs = append(vs, apierr.Violation{Type: "IN_USE", Subject: "vm:" + v.pb.Name,
						Description: fmt.Sprintf("vm %s has NIC %s on it", v.pb.Name, nic.Mac)})
				}
			}
		}
		slices.SortFunc(vs, func(a, b apierr.Violation) int { return strings.Compare(a.Description, b.Description) })
		err = apierr.FailedPrecondition(fmt.Sprintf("network %s has %d NICs; delete them first", n.pb.Name, len(vs)), vs...)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := n.pb, n.rev
	t := m.newTaskLocked(acliv1.TaskOperation_kNetworkDelete, []*acliv1.EntityRef{networkRef(cur)}, cur.Uuid)
	m.mu.Unlock()
	return m.quick(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: networkKey(cur.Uuid), rev: rev}},
			apply:   func(int64) { m.deleteNetworkLocked(cur.Uuid) },
			message: fmt.Sprintf("network %s deleted", cur.Name),
		}, nil
	})
}

// editNetwork runs change on a copy of a network under the model lock and
// commits the result as one kNetworkUpdate task.
func (m *Manager) editNetwork(ctx context.Context, ref string, change func(next *acliv1.Network) (string, error)) (*acliv1.Task, error) {
	m.mu.Lock()
	r, err := m.networkLocked("network", ref)
	if err == nil {
		err = m.checkBusyLocked("network", r.pb.Name, r.pb.Uuid)
	}
	var next *acliv1.Network
	var msg string
	if err == nil {
		next = proto.Clone(r.pb).(*acliv1.Network)
		next.NumNics = 0
		msg, err = change(next)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	rev := r.rev
	t := m.newTaskLocked(acliv1.TaskOperation_kNetworkUpdate, []*acliv1.EntityRef{networkRef(next)}, next.Uuid)
	m.mu.Unlock()
	return m.quick(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		return outcome{
			writes:  []write{{key: networkKey(next.Uuid), msg: next, rev: rev}},
			apply:   func(rev int64) { m.putNetworkLocked(next, rev) },
			message: msg,
		}, nil
	})
}

func (s networkService) AddDhcpPool(ctx context.Context, req *acliv1.AddDhcpPoolRequest) (*acliv1.Task, error) {
	return s.m.editNetwork(ctx, req.Network, func(n *acliv1.Network) (string, error) {
		p, err := network.NewPool(n, req.Start, req.End)
		if err != nil {
			return "", err
		}
		n.DhcpPools = append(n.DhcpPools, p)
		return fmt.Sprintf("network %s: DHCP pool %s-%s added", n.Name, p.Start, p.End), nil
	})
}

func (s networkService) UpdateDhcpDns(ctx context.Context, req *acliv1.UpdateDhcpDnsRequest) (*acliv1.Task, error) {
	if req.Servers == nil && req.Domains == nil {
		return nil, apierr.BadField("servers", "nothing to update: give servers= (DNS server addresses) and/or domains= (search domains)")
	}
	srv, dom, err := network.ParseDNS(req.Servers, req.Domains)
	if err != nil {
		return nil, err
	}
	return s.m.editNetwork(ctx, req.Network, func(n *acliv1.Network) (string, error) {
		if req.Servers != nil {
			n.DnsServers = srv
		}
		if req.Domains != nil {
			n.DnsDomains = dom
		}
		return fmt.Sprintf("network %s: DNS servers [%s], search domains [%s]", n.Name,
			strings.Join(n.DnsServers, ", "), strings.Join(n.DnsDomains, ", ")), nil
	})
}

func (s networkService) ListNetworkVms(ctx context.Context, req *acliv1.ListNetworkVmsRequest) (*acliv1.ListNetworkVmsResponse, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	n, err := m.networkLocked("network", req.Network)
	if err != nil {
		return nil, err
	}
	out := &acliv1.ListNetworkVmsResponse{}
	if m.nicCount[n.pb.Uuid] == 0 {
		return out, nil
	}
	for _, v := range m.vmSorted { // by name, then UUID
		for _, nic := range v.pb.Nics {
			if nic.NetworkUuid == n.pb.Uuid {
				out.Vms = append(out.Vms, &acliv1.NetworkVm{VmUuid: v.pb.Uuid, VmName: v.pb.Name, Mac: nic.Mac, Ip: nic.Ip})
			}
		}
	}
	return out, nil
}

// vswitchLocked is a virtual switch by name (default vs0).
func (m *Manager) vswitchLocked(name string) (*acliv1.VirtualSwitch, int64, error) {
	if name == "" {
		name = network.DefaultSwitch
	}
	if r := m.vswitches[name]; r != nil {
		return r.pb, r.rev, nil
	}
	if name == network.DefaultSwitch {
		return network.Switch(nil), 0, nil
	}
	names := []string{network.DefaultSwitch}
	for n := range m.vswitches {
		names = append(names, n)
	}
	return nil, 0, apierr.NotFound("virtual switch", name, names)
}

func (s networkService) GetVirtualSwitch(ctx context.Context, req *acliv1.GetVirtualSwitchRequest) (*acliv1.VirtualSwitch, error) {
	m := s.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	vs, rev, err := m.vswitchLocked(req.Name)
	if err != nil {
		return nil, err
	}
	out := proto.Clone(vs).(*acliv1.VirtualSwitch)
	out.LogicalTimestamp = rev
	return out, nil
}

func (s networkService) UpdateVirtualSwitch(ctx context.Context, req *acliv1.UpdateVirtualSwitchRequest) (*acliv1.Task, error) {
	m := s.m
	m.mu.Lock()
	cur, rev, err := m.vswitchLocked(req.Name)
	var next *acliv1.VirtualSwitch
	var changed []string
	if err == nil {
		next, changed, err = network.UpdateSwitch(cur, req)
	}
	if err == nil {
		err = m.checkBusyLocked("virtual switch", cur.Name, "vswitch:"+cur.Name)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	ref := &acliv1.EntityRef{Kind: acliv1.EntityKind_kCluster, Uuid: m.clusterRecord().GetUuid(), Name: cur.Name}
	t := m.newTaskLocked(acliv1.TaskOperation_kVirtualSwitchUpdate, []*acliv1.EntityRef{ref}, "vswitch:"+cur.Name)
	m.mu.Unlock()
	return m.quick(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		// Hosts are wired before the record says so: a host that refuses
		// leaves the switch as it was.
		if sw, ok := m.drv.(driver.SwitchWirer); ok {
			if err := sw.WireSwitch(ctx, next); err != nil {
				return outcome{}, fmt.Errorf("virtual switch %s: %w", next.Name, err)
			}
		}
		return outcome{
			writes:  []write{{key: vswitchPrefix + next.Name, msg: next, rev: rev}},
			apply:   func(rev int64) { m.putVswitchLocked(next, rev) },
			message: fmt.Sprintf("virtual switch %s updated (%s)", next.Name, strings.Join(changed, ", ")),
		}, nil
	})
}

// nicAddrLocked picks a new NIC's address on n for task t: the one asked
// for, or the next free one of its pools, skipping addresses other tasks
// are giving out. t holds the address until it ends; the commit checks it
// again (state's IP rule).
func (m *Manager) nicAddrLocked(t *taskRec, n *acliv1.Network, ip netip.Addr) (netip.Addr, error) {
	taken := func(a netip.Addr) string {
		if id := m.nicIPs[nicIPKey(n.Uuid, a.String())]; id != "" {
			if v := m.vms[id]; v != nil {
				return v.pb.Name
			}
			return id
		}
		if o := m.busy["ip:"+nicIPKey(n.Uuid, a.String())]; o != nil && o != t {
			return "being created by task " + o.PB.Uuid
		}
		return ""
	}
	a, err := network.NicAddr(n, ip, taken)
	if err == nil && a.IsValid() {
		m.lockMoreLocked(t, "ip:"+nicIPKey(n.Uuid, a.String()))
	}
	return a, err
}
