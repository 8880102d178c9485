package manager

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/network"
)

// NICs of VMs: create (with an address from the network's pools), update
// (VLAN mode, trunked VLANs, link state) and delete (which frees the
// address).

var nicModels = []string{"virtio", "e1000", "rtl8139"}

func parseMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", apierr.BadField("mac", "mac %q is not a MAC address, e.g. 50:6b:8d:12:34:56", s)
	}
	if hw[0]&1 == 1 {
		return "", apierr.BadField("mac", "mac %s is a multicast address; a NIC needs a unicast one", hw)
	}
	return hw.String(), nil
}

// newMAC generates an unused MAC in the Nutanix OUI 50:6b:8d.
func (m *Manager) newMACLocked() string {
	for {
		var b [3]byte
		rand.Read(b[:])
		mac := fmt.Sprintf("50:6b:8d:%02x:%02x:%02x", b[0], b[1], b[2])
		if _, used := m.macs[mac]; !used && m.busy["mac:"+mac] == nil {
			return mac
		}
	}
}

func (s vmService) CreateNic(ctx context.Context, req *acliv1.CreateNicRequest) (*acliv1.Task, error) {
	m := s.m
	model := strings.ToLower(req.Model)
	if model == "" {
		model = "virtio"
	}
	if !slices.Contains(nicModels, model) {
		msg := fmt.Sprintf("nic model %q is unknown; use virtio, e1000 or rtl8139", req.Model)
		if s := apierr.Nearest(model, nicModels); s != "" {
			msg = fmt.Sprintf("nic model %q is unknown (did you mean %q?)", req.Model, s)
		}
		return nil, apierr.BadField("model", "%s", msg)
	}
	mode := req.VlanMode
	if mode == acliv1.NetworkMode_NETWORK_MODE_UNSPECIFIED {
		mode = acliv1.NetworkMode_kAccess
	}
	trunked, err := network.NicVLAN(mode, req.TrunkedNetworks)
	if err != nil {
		return nil, err
	}
	mac := ""
	if req.Mac != "" {
		if mac, err = parseMAC(req.Mac); err != nil {
			return nil, err
		}
	}
	var ip netip.Addr
	if req.Ip != "" {
		if ip, err = netip.ParseAddr(req.Ip); err != nil {
			return nil, apierr.BadField("ip", "ip %q is not an IP address, e.g. 10.1.0.15", req.Ip)
		}
	}
	m.mu.RLock()
	n, err := m.networkLocked("network", req.Network)
	if err == nil && mac != "" {
		if owner, used := m.macs[mac]; used {
			err = apierr.AlreadyExists("nic", mac, "vm "+m.vms[owner].pb.Name+" has a NIC with this MAC")
		}
	}
	var netID string
	if err == nil {
		netID = n.pb.Uuid
		if ip.IsValid() {
			if why := network.CheckAddr(n.pb, ip); why != "" {
				err = apierr.BadField("ip", "%s", why)
			}
		}
	}
	if err == nil && mac == "" {
		mac = m.newMACLocked()
	}
	m.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	// The MAC is locked like an entity so two NICs cannot claim it at once;
	// the address is held the same way once picked.
	return m.editVm(ctx, req.Vm, acliv1.TaskOperation_kVmNicCreate, func(cur *acliv1.Vm, t *taskRec) (*acliv1.Vm, string, error) {
		nr := m.networks[netID]
		if nr == nil {
			return nil, "", apierr.NotFound("network", req.Network, nil)
		}
		if owner, used := m.macs[mac]; used {
			return nil, "", apierr.AlreadyExists("nic", mac, "vm "+m.vms[owner].pb.Name+" has a NIC with this MAC")
		}
		addr, err := m.nicAddrLocked(t, nr.pb, ip)
		if err != nil {
			return nil, "", err
		}
		v := proto.Clone(cur).(*acliv1.Vm)
		nic := &acliv1.Nic{Mac: mac, NetworkUuid: nr.pb.Uuid, NetworkName: nr.pb.Name, Model: model,
			VlanMode: mode, TrunkedNetworks: trunked, Disconnected: req.Connected != nil && !*req.Connected}
		msg := fmt.Sprintf("nic %s on network %s added to vm %s", mac, nr.pb.Name, cur.Name)
		if addr.IsValid() {
			nic.Ip = addr.String()
			msg += " with ip " + nic.Ip
		}
		v.Nics = append(v.Nics, nic)
		return v, msg, nil
	}, "mac:"+mac)
}

func (s vmService) DeleteNic(ctx context.Context, req *acliv1.DeleteNicRequest) (*acliv1.Task, error) {
	if req.Mac == "" {
		return nil, apierr.BadField("mac", "mac is required: give the MAC of the NIC to remove")
	}
	mac, err := parseMAC(req.Mac)
	if err != nil {
		return nil, err
	}
	return s.m.editVm(ctx, req.Vm, acliv1.TaskOperation_kVmNicDelete, func(cur *acliv1.Vm, _ *taskRec) (*acliv1.Vm, string, error) {
		v := proto.Clone(cur).(*acliv1.Vm)
		i, err := nicIndex(cur, mac)
		if err != nil {
			return nil, "", err
		}
		v.Nics = slices.Delete(v.Nics, i, i+1)
		return v, fmt.Sprintf("nic %s removed from vm %s", mac, cur.Name), nil
	})
}

// nicIndex finds a VM's NIC by MAC; not found names the MACs it has.
func nicIndex(v *acliv1.Vm, mac string) (int, error) {
	var macs []string
	for i, nic := range v.Nics {
		if nic.Mac == mac {
			return i, nil
		}
		macs = append(macs, nic.Mac)
	}
	return 0, apierr.NotFound("nic", mac+" of vm "+v.Name, macs)
}

func (s vmService) UpdateNic(ctx context.Context, req *acliv1.UpdateNicRequest) (*acliv1.Task, error) {
	m := s.m
	if req.Mac == "" {
		return nil, apierr.BadField("mac", "mac is required: give the MAC of the NIC to change")
	}
	mac, err := parseMAC(req.Mac)
	if err != nil {
		return nil, err
	}
	if req.VlanMode == acliv1.NetworkMode_NETWORK_MODE_UNSPECIFIED && !req.TrunkedNetworksSet && req.Connected == nil {
		return nil, apierr.BadField("mac", "nothing to update: give vlan_mode=, trunked_networks= or connected=")
	}
	m.mu.Lock()
	r, err := m.vmLocked("vm", req.Vm)
	if err == nil {
		err = m.checkBusyLocked("vm", r.pb.Name, r.pb.Uuid)
	}
	var next *acliv1.Vm
	var nic *acliv1.Nic
	if err == nil {
		var i int
		if i, err = nicIndex(r.pb, mac); err == nil {
			next = proto.Clone(r.pb).(*acliv1.Vm)
			nic = next.Nics[i]
			err = updateNic(nic, req)
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cur, rev := r.pb, r.rev
	host := m.hosts[cur.HostUuid]
	t := m.newTaskLocked(acliv1.TaskOperation_kVmNicUpdate, []*acliv1.EntityRef{vmRef(cur)}, cur.Uuid)
	m.mu.Unlock()
	return m.quick(ctx, t, func(ctx context.Context, t *taskRec) (outcome, error) {
		// A running VM's NIC changes on its host first (link state, VLAN
		// tags in place); if the host refuses, the record stays as it was.
		if nu, ok := m.drv.(driver.NicUpdater); ok && host != nil && placed(cur) {
			if err := nu.UpdateNic(ctx, host.pb, next, nic); err != nil {
				return outcome{}, fmt.Errorf("nic %s of vm %s: %w", mac, cur.Name, err)
			}
		}
		return outcome{
			writes:  []write{{key: vmKey(cur.Uuid), msg: next, rev: rev}},
			apply:   func(rev int64) { m.putVmLocked(next, rev) },
			message: fmt.Sprintf("nic %s of vm %s updated (%s)", mac, cur.Name, network.NicText(nic)),
		}, nil
	})
}

// updateNic applies req's VLAN and link settings to nic.
func updateNic(nic *acliv1.Nic, req *acliv1.UpdateNicRequest) error {
	mode, trunked := nic.VlanMode, nic.TrunkedNetworks
	if mode == acliv1.NetworkMode_NETWORK_MODE_UNSPECIFIED {
		mode = acliv1.NetworkMode_kAccess
	}
	if req.VlanMode != acliv1.NetworkMode_NETWORK_MODE_UNSPECIFIED {
		mode = req.VlanMode
		if mode == acliv1.NetworkMode_kAccess && !req.TrunkedNetworksSet {
			trunked = nil // acli: back to access drops the trunk
		}
	}
	if req.TrunkedNetworksSet {
		trunked = req.TrunkedNetworks
	}
	kept, err := network.NicVLAN(mode, trunked)
	if err != nil {
		return err
	}
	nic.VlanMode, nic.TrunkedNetworks = mode, kept
	if req.Connected != nil {
		nic.Disconnected = !*req.Connected
	}
	return nil
}

// cloneNicAddrsLocked gives a clone's NICs addresses of their own: the
// next free one on a managed network, none elsewhere (an address given by
// hand belongs to the source).
func (m *Manager) cloneNicAddrsLocked(t *taskRec, v *acliv1.Vm) error {
	for _, nic := range v.Nics {
		nic.Ip = ""
		nr := m.networks[nic.NetworkUuid]
		if nr == nil || !network.Managed(nr.pb) {
			continue
		}
		a, err := m.nicAddrLocked(t, nr.pb, netip.Addr{})
		if err != nil {
			return err
		}
		if a.IsValid() {
			nic.Ip = a.String()
		}
	}
	return nil
}
