package network

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// Service is the network feature behind manager/rpc's adapters: networks
// and their address plans, the virtual switch and VMs' NICs. It reads the
// committed records through DB and changes them as tasks.
type Service struct {
	DB    *state.DB
	Tasks tasks.Starter
	// Hosts wires switches and NICs on the hosts (a driver.SwitchWirer, a
	// driver.NicUpdater, or neither).
	Hosts any
}

// Ref names n in tasks and events.
func Ref(n *acliv1.Network) *acliv1.EntityRef {
	return &acliv1.EntityRef{Kind: acliv1.EntityKind_kNetwork, Uuid: n.Uuid, Name: n.Name}
}

// checkRef refuses a reference no entity can have, before any name is
// compared with it.
func checkRef(field, ref, what string) error {
	if ref == "" {
		return apierr.BadField(field, "%s is required: give a %s name or UUID", field, what)
	}
	return state.CheckRef(field, ref)
}

// find is the committed network ref names.
func find(tx *state.Tx, field, ref string) (*acliv1.Network, error) {
	if err := checkRef(field, ref, "network"); err != nil {
		return nil, err
	}
	if n := tx.FindNetwork(ref); n != nil {
		return n, nil
	}
	return nil, apierr.NotFound("network", ref, tx.NetworkNames())
}

// out is the API view of n: the record with its use.
func out(tx *state.Tx, n *acliv1.Network) *acliv1.Network {
	n = proto.Clone(n).(*acliv1.Network)
	var ips int32
	n.NumNics, ips = tx.NetworkUse(n.Uuid)
	if n.IpConfig != "" {
		n.NumIpsUsed = ips
	}
	return n
}

func (s *Service) ListNetworks(ctx context.Context, _ *acliv1.ListNetworksRequest) (*acliv1.ListNetworksResponse, error) {
	resp := &acliv1.ListNetworksResponse{}
	s.DB.View(func(tx *state.Tx) {
		for _, n := range tx.Networks() {
			resp.Networks = append(resp.Networks, out(tx, n))
		}
	})
	slices.SortFunc(resp.Networks, func(a, b *acliv1.Network) int { return strings.Compare(a.Name, b.Name) })
	return resp, nil
}

func (s *Service) GetNetwork(ctx context.Context, req *acliv1.GetNetworkRequest) (*acliv1.Network, error) {
	var n *acliv1.Network
	var err error
	s.DB.View(func(tx *state.Tx) {
		if n, err = find(tx, "network", req.Network); err == nil {
			n = out(tx, n)
		}
	})
	return n, err
}

// CreateNetwork gets a checked request (manager/rpc). The name is claimed
// by the task until it ends; the commit checks it is still free.
func (s *Service) CreateNetwork(ctx context.Context, req *acliv1.CreateNetworkRequest) (*acliv1.Task, error) {
	n := &acliv1.Network{
		Uuid: uuid.NewString(), Name: req.Name, VlanId: req.VlanId, Mode: req.Mode, VswitchName: req.VswitchName,
	}
	if req.IpConfig != "" {
		p, gw, err := ParseIPConfig(req.IpConfig)
		if err != nil {
			return nil, err
		}
		n.IpConfig = p.String()
		if gw.IsValid() {
			n.DefaultGateway = gw.String()
		}
	}
	var err error
	s.DB.View(func(tx *state.Tx) {
		if other := tx.FindNetwork(n.Name); other != nil && other.Name == n.Name {
			err = apierr.AlreadyExists("network", n.Name, "network names are unique (uuid "+other.Uuid+")")
		}
	})
	if err != nil {
		return nil, err
	}
	t, err := s.Tasks.Begin(ctx, "network", acliv1.TaskOperation_kNetworkCreate, []*acliv1.EntityRef{Ref(n)}, n.Uuid, "network-name:"+n.Name)
	if err != nil {
		return nil, err
	}
	return t.Commit(ctx, []state.Write{{Key: state.NetworkKey(n.Uuid), Msg: n, Rev: 0}},
		fmt.Sprintf("network %s created (vlan %d)", n.Name, n.VlanId))
}

// DeleteNetwork refuses while NICs are on the network, naming each.
func (s *Service) DeleteNetwork(ctx context.Context, req *acliv1.DeleteNetworkRequest) (*acliv1.Task, error) {
	return s.edit(ctx, req.Network, acliv1.TaskOperation_kNetworkDelete, func(tx *state.Tx, n *acliv1.Network) (*acliv1.Network, string, error) {
		if nics, _ := tx.NetworkUse(n.Uuid); nics == 0 {
			return nil, fmt.Sprintf("network %s deleted", n.Name), nil
		}
		var vs []apierr.Violation
		for _, v := range tx.Vms() {
			for _, nic := range v.Nics {
				if nic.NetworkUuid == n.Uuid {
					vs = append(vs, apierr.Violation{Type: "IN_USE", Subject: "vm:" + v.Name,
						Description: fmt.Sprintf("vm %s has NIC %s on it", v.Name, nic.Mac)})
				}
			}
		}
		if len(vs) > 0 {
			slices.SortFunc(vs, func(a, b apierr.Violation) int { return strings.Compare(a.Description, b.Description) })
			return nil, "", apierr.FailedPrecondition(fmt.Sprintf("network %s has %d NICs; delete them first", n.Name, len(vs)), vs...)
		}
		return nil, fmt.Sprintf("network %s deleted", n.Name), nil
	})
}

// edit is the shape of a change to one network: resolve it, begin a task
// holding it, let change build the next record from the committed one (nil
// deletes it) and commit that. The record is read once the task holds the
// network, so no other task changes it before the commit.
func (s *Service) edit(ctx context.Context, ref string, op acliv1.TaskOperation, change func(tx *state.Tx, cur *acliv1.Network) (*acliv1.Network, string, error)) (*acliv1.Task, error) {
	var cur *acliv1.Network
	var err error
	s.DB.View(func(tx *state.Tx) { cur, err = find(tx, "network", ref) })
	if err != nil {
		return nil, err
	}
	t, err := s.Tasks.Begin(ctx, "network", op, []*acliv1.EntityRef{Ref(cur)}, cur.Uuid)
	if err != nil {
		return nil, err
	}
	var next *acliv1.Network
	var msg string
	var rev int64
	s.DB.View(func(tx *state.Tx) {
		key := state.NetworkKey(cur.Uuid)
		if cur = tx.Network(cur.Uuid); cur == nil {
			err = apierr.NotFound("network", ref, tx.NetworkNames())
			return
		}
		rev = tx.Rev(key)
		next, msg, err = change(tx, cur)
	})
	if err != nil {
		t.Drop()
		return nil, err
	}
	return t.Commit(ctx, []state.Write{{Key: state.NetworkKey(cur.Uuid), Msg: msgOrNil(next), Rev: rev}}, msg)
}

// msgOrNil keeps a nil record a nil message (a delete).
func msgOrNil(n *acliv1.Network) proto.Message {
	if n == nil {
		return nil
	}
	return n
}

// update is edit for a change that keeps the network.
func (s *Service) update(ctx context.Context, ref string, change func(next *acliv1.Network) (string, error)) (*acliv1.Task, error) {
	return s.edit(ctx, ref, acliv1.TaskOperation_kNetworkUpdate, func(_ *state.Tx, cur *acliv1.Network) (*acliv1.Network, string, error) {
		next := proto.Clone(cur).(*acliv1.Network)
		next.NumNics, next.NumIpsUsed = 0, 0
		msg, err := change(next)
		return next, msg, err
	})
}

func (s *Service) AddDhcpPool(ctx context.Context, req *acliv1.AddDhcpPoolRequest) (*acliv1.Task, error) {
	return s.update(ctx, req.Network, func(n *acliv1.Network) (string, error) {
		p, err := NewPool(n, req.Start, req.End)
		if err != nil {
			return "", err
		}
		n.DhcpPools = append(n.DhcpPools, p)
		return fmt.Sprintf("network %s: DHCP pool %s-%s added", n.Name, p.Start, p.End), nil
	})
}

func (s *Service) UpdateDhcpDns(ctx context.Context, req *acliv1.UpdateDhcpDnsRequest) (*acliv1.Task, error) {
	if req.Servers == nil && req.Domains == nil {
		return nil, apierr.BadField("servers", "nothing to update: give servers= (DNS server addresses) and/or domains= (search domains)")
	}
	srv, dom, err := ParseDNS(req.Servers, req.Domains)
	if err != nil {
		return nil, err
	}
	return s.update(ctx, req.Network, func(n *acliv1.Network) (string, error) {
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

// ListNetworkVms lists the NICs on a network by VM name, then UUID.
func (s *Service) ListNetworkVms(ctx context.Context, req *acliv1.ListNetworkVmsRequest) (*acliv1.ListNetworkVmsResponse, error) {
	resp := &acliv1.ListNetworkVmsResponse{}
	var err error
	s.DB.View(func(tx *state.Tx) {
		var n *acliv1.Network
		if n, err = find(tx, "network", req.Network); err != nil {
			return
		}
		if nics, _ := tx.NetworkUse(n.Uuid); nics == 0 {
			return
		}
		for _, v := range tx.Vms() {
			for _, nic := range v.Nics {
				if nic.NetworkUuid == n.Uuid {
					resp.Vms = append(resp.Vms, &acliv1.NetworkVm{VmUuid: v.Uuid, VmName: v.Name, Mac: nic.Mac, Ip: nic.Ip})
				}
			}
		}
	})
	slices.SortStableFunc(resp.Vms, func(a, b *acliv1.NetworkVm) int {
		if c := strings.Compare(a.VmName, b.VmName); c != 0 {
			return c
		}
		return strings.Compare(a.VmUuid, b.VmUuid)
	})
	return resp, err
}

// vswitch is a virtual switch by name (default vs0) and its revision.
func vswitch(tx *state.Tx, name string) (*acliv1.VirtualSwitch, int64, error) {
	if name == "" {
		name = DefaultSwitch
	}
	if vs := tx.Switch(name); vs != nil {
		return vs, tx.Rev(state.SwitchKey(name)), nil
	}
	if name == DefaultSwitch {
		return Switch(nil), 0, nil
	}
	names := append([]string{DefaultSwitch}, tx.SwitchNames()...)
	return nil, 0, apierr.NotFound("virtual switch", name, names)
}

func (s *Service) GetVirtualSwitch(ctx context.Context, req *acliv1.GetVirtualSwitchRequest) (*acliv1.VirtualSwitch, error) {
	var vs *acliv1.VirtualSwitch
	var rev int64
	var err error
	name := cmp.Or(req.Name, DefaultSwitch)
	if werr := s.DB.ViewDurable(ctx, state.SwitchKey(name), func(tx *state.Tx) { vs, rev, err = vswitch(tx, name) }); werr != nil {
		return nil, status.FromContextError(werr).Err()
	}
	if err != nil {
		return nil, err
	}
	vs = proto.Clone(vs).(*acliv1.VirtualSwitch)
	vs.LogicalTimestamp = rev
	return vs, nil
}

// UpdateVirtualSwitch wires the hosts before the record says so: a host
// that refuses leaves the switch as it was.
func (s *Service) UpdateVirtualSwitch(ctx context.Context, req *acliv1.UpdateVirtualSwitchRequest) (*acliv1.Task, error) {
	var cur *acliv1.VirtualSwitch
	var cluster string
	var hosts []*acliv1.Host
	var err error
	s.DB.View(func(tx *state.Tx) {
		cluster = tx.Cluster().GetUuid()
		hosts = tx.Hosts()
		cur, _, err = vswitch(tx, req.Name)
	})
	if err != nil {
		return nil, err
	}
	if _, _, err := UpdateSwitch(cur, req, hosts); err != nil {
		return nil, err // bad input is refused before any task
	}
	lock := "vswitch:" + cur.Name
	ref := &acliv1.EntityRef{Kind: acliv1.EntityKind_kCluster, Uuid: cluster, Name: cur.Name}
	t, err := s.Tasks.Begin(ctx, "virtual switch", acliv1.TaskOperation_kVirtualSwitchUpdate, []*acliv1.EntityRef{ref}, lock)
	if err != nil {
		return nil, err
	}
	var next *acliv1.VirtualSwitch
	var changed []string
	var rev int64
	s.DB.View(func(tx *state.Tx) {
		if cur, rev, err = vswitch(tx, cur.Name); err == nil {
			next, changed, err = UpdateSwitch(cur, req, tx.Hosts())
		}
	})
	if err == nil {
		if sw, ok := s.Hosts.(driver.SwitchWirer); ok {
			if werr := sw.WireSwitch(ctx, next); werr != nil {
				// The hosts refuse: nothing changed (exit 5).
				err = apierr.Precondition("HOST_REFUSED", "virtual_switch:"+next.Name, "virtual switch %s: %v", next.Name, werr)
			}
		}
	}
	if err != nil {
		t.Drop()
		return nil, err
	}
	return t.Commit(ctx, []state.Write{{Key: state.SwitchKey(next.Name), Msg: next, Rev: rev}},
		fmt.Sprintf("virtual switch %s updated (%s)", next.Name, strings.Join(changed, ", ")))
}

// NicNetwork is what a host needs to plug a NIC of network id into its
// virtual switch (driver.NetworkUser); false for a network not on record.
func (s *Service) NicNetwork(id string) (driver.NicNetwork, bool) {
	var nn driver.NicNetwork
	var ok bool
	s.DB.View(func(tx *state.Tx) {
		n := tx.Network(id)
		if n == nil {
			return
		}
		nn.VlanID, ok = n.VlanId, true
		if vs, _, err := vswitch(tx, n.VswitchName); err == nil {
			nn.Bridge = vs.BridgeName
		}
	})
	return nn, ok
}

// Rewire gives the hosts the committed virtual switches (after a start,
// hosts have what they had, or their defaults).
func (s *Service) Rewire(ctx context.Context) error {
	sw, ok := s.Hosts.(driver.SwitchWirer)
	if !ok {
		return nil
	}
	var stored []*acliv1.VirtualSwitch
	s.DB.View(func(tx *state.Tx) {
		for _, name := range tx.SwitchNames() {
			stored = append(stored, tx.Switch(name))
		}
	})
	for _, vs := range stored {
		if err := sw.WireSwitch(ctx, vs); err != nil {
			return fmt.Errorf("virtual switch %s: %w", vs.Name, err)
		}
	}
	return nil
}
