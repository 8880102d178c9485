package network

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
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
	"github.com/acli-dev/acli/manager/vm"
)

// NICs of VMs: create (with an address from the network's pools), update
// (VLAN mode, trunked VLANs, link state) and delete (which frees the
// address).

// NicModels are the NIC models a VM can have.
var NicModels = []string{"virtio", "e1000", "rtl8139"}

// ParseMAC reads a unicast MAC address.
func ParseMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", apierr.BadField("mac", "mac %q is not a MAC address, e.g. 50:6b:8d:12:34:56", s)
	}
	if hw[0]&1 == 1 {
		return "", apierr.BadField("mac", "mac %s is a multicast address; a NIC needs a unicast one", hw)
	}
	return hw.String(), nil
}

// NewMAC generates a MAC in the Nutanix OUI 50:6b:8d that used refuses
// nowhere.
func NewMAC(used func(mac string) bool) string {
	for {
		var b [3]byte
		rand.Read(b[:])
		mac := fmt.Sprintf("50:6b:8d:%02x:%02x:%02x", b[0], b[1], b[2])
		if !used(mac) {
			return mac
		}
	}
}

// AddrLock is the claim a task holds on an address it gives out until the
// commit that records it.
func AddrLock(network string, a netip.Addr) string { return "ip:" + network + "/" + a.String() }

// pickAddr picks a NIC's address on n (NicAddr): committed maps the
// addresses other NICs hold to their VM's name, and claim takes an
// address for the task, or names the task holding it.
func pickAddr(n *acliv1.Network, ip netip.Addr, committed map[netip.Addr]string, claim func(netip.Addr) string) (netip.Addr, error) {
	return NicAddr(n, ip, func(a netip.Addr) string {
		if owner := committed[a]; owner != "" {
			return owner
		}
		return claim(a)
	})
}

// CloneAddrs gives a clone's NICs addresses of their own: the next free
// one on a managed network, none elsewhere (an address given by hand
// belongs to the source). claim is as for pickAddr.
func CloneAddrs(tx *state.Tx, v *acliv1.Vm, claim func(network string, a netip.Addr) string) error {
	for _, nic := range v.Nics {
		nic.Ip = ""
		n := tx.Network(nic.NetworkUuid)
		if n == nil || !Managed(n) {
			continue
		}
		a, err := NicAddr(n, netip.Addr{}, func(a netip.Addr) string {
			if v := tx.NicIPHolder(n.Uuid, a.String()); v != nil {
				return v.Name
			}
			return claim(n.Uuid, a)
		})
		if err != nil {
			return err
		}
		if a.IsValid() {
			nic.Ip = a.String()
		}
	}
	return nil
}

// vmEdit is a change of one VM under way: its task, and the committed
// record read once the task holds the VM.
type vmEdit struct {
	t   tasks.Quick
	cur *acliv1.Vm
	rev int64
}

// beginVm resolves ref and begins op on it, holding it and locks.
func (s *Service) beginVm(ctx context.Context, ref string, op acliv1.TaskOperation, locks ...string) (*vmEdit, error) {
	t, cur, rev, err := vm.Begin(ctx, s.Tasks, s.DB, ref, op, locks...)
	if err != nil {
		return nil, err
	}
	return &vmEdit{t: t, cur: cur, rev: rev}, nil
}

func (e *vmEdit) commit(ctx context.Context, next *acliv1.Vm, msg string) (*acliv1.Task, error) {
	return e.t.Commit(ctx, []state.Write{{Key: state.VmKey(next.Uuid), Msg: next, Rev: e.rev}}, msg)
}

func (e *vmEdit) fail(err error) (*acliv1.Task, error) {
	e.t.Drop()
	return nil, err
}

func checkModel(m string) (string, error) {
	model := strings.ToLower(m)
	if model == "" {
		return "virtio", nil
	}
	if slices.Contains(NicModels, model) {
		return model, nil
	}
	msg := fmt.Sprintf("nic model %q is unknown; use virtio, e1000 or rtl8139", m)
	if s := apierr.Nearest(model, NicModels); s != "" {
		msg = fmt.Sprintf("nic model %q is unknown (did you mean %q?)", m, s)
	}
	return "", apierr.BadField("model", "%s", msg)
}

// CreateNic adds a NIC: the MAC is claimed like an entity so two NICs
// cannot take it at once, and the address is claimed the same way once
// picked; the commit checks both again (state's IP rule).
func (s *Service) CreateNic(ctx context.Context, req *acliv1.CreateNicRequest) (*acliv1.Task, error) {
	model, err := checkModel(req.Model)
	if err != nil {
		return nil, err
	}
	mode := req.VlanMode
	if mode == acliv1.NetworkMode_NETWORK_MODE_UNSPECIFIED {
		mode = acliv1.NetworkMode_kAccess
	}
	trunked, err := NicVLAN(mode, req.TrunkedNetworks)
	if err != nil {
		return nil, err
	}
	mac := ""
	if req.Mac != "" {
		if mac, err = ParseMAC(req.Mac); err != nil {
			return nil, err
		}
	}
	var ip netip.Addr
	if req.Ip != "" {
		if ip, err = netip.ParseAddr(req.Ip); err != nil {
			return nil, apierr.BadField("ip", "ip %q is not an IP address, e.g. 10.1.0.15", req.Ip)
		}
	}
	var n *acliv1.Network
	s.DB.View(func(tx *state.Tx) {
		if n, err = find(tx, "network", req.Network); err != nil {
			return
		}
		if owner := tx.VmByMAC(mac); mac != "" && owner != nil {
			err = apierr.AlreadyExists("nic", mac, "vm "+owner.Name+" has a NIC with this MAC")
			return
		}
		if ip.IsValid() {
			if why := CheckAddr(n, ip); why != "" {
				err = apierr.BadField("ip", "%s", why)
				return
			}
		}
		if mac == "" {
			mac = NewMAC(func(m string) bool { return tx.VmByMAC(m) != nil })
		}
	})
	if err != nil {
		return nil, err
	}
	e, err := s.beginVm(ctx, req.Vm, acliv1.TaskOperation_kVmNicCreate, "mac:"+mac)
	if err != nil {
		return nil, err
	}
	var taken map[netip.Addr]string
	s.DB.View(func(tx *state.Tx) {
		if n = tx.Network(n.Uuid); n == nil {
			err = apierr.NotFound("network", req.Network, tx.NetworkNames())
			return
		}
		if owner := tx.VmByMAC(mac); owner != nil {
			err = apierr.AlreadyExists("nic", mac, "vm "+owner.Name+" has a NIC with this MAC")
			return
		}
		taken = Taken(tx.Vms(), n.Uuid)
	})
	if err != nil {
		return e.fail(err)
	}
	addr, err := pickAddr(n, ip, taken, func(a netip.Addr) string {
		if other, ok := e.t.Hold(AddrLock(n.Uuid, a)); !ok {
			return "being created by task " + other
		}
		// A task may have given it out and let go after taken was read.
		var owner string
		s.DB.View(func(tx *state.Tx) {
			if v := tx.NicIPHolder(n.Uuid, a.String()); v != nil {
				owner = v.Name
			}
		})
		return owner
	})
	if err != nil {
		return e.fail(err)
	}
	v := proto.Clone(e.cur).(*acliv1.Vm)
	nic := &acliv1.Nic{Mac: mac, NetworkUuid: n.Uuid, NetworkName: n.Name, Model: model,
		VlanMode: mode, TrunkedNetworks: trunked, Disconnected: req.Connected != nil && !*req.Connected}
	msg := fmt.Sprintf("nic %s on network %s added to vm %s", mac, n.Name, v.Name)
	if addr.IsValid() {
		nic.Ip = addr.String()
		msg += " with ip " + nic.Ip
	}
	v.Nics = append(v.Nics, nic)
	return e.commit(ctx, v, msg)
}

func (s *Service) DeleteNic(ctx context.Context, req *acliv1.DeleteNicRequest) (*acliv1.Task, error) {
	if req.Mac == "" {
		return nil, apierr.BadField("mac", "mac is required: give the MAC of the NIC to remove")
	}
	mac, err := ParseMAC(req.Mac)
	if err != nil {
		return nil, err
	}
	e, err := s.beginVm(ctx, req.Vm, acliv1.TaskOperation_kVmNicDelete)
	if err != nil {
		return nil, err
	}
	i, err := nicIndex(e.cur, mac)
	if err != nil {
		return e.fail(err)
	}
	v := proto.Clone(e.cur).(*acliv1.Vm)
	v.Nics = slices.Delete(v.Nics, i, i+1)
	return e.commit(ctx, v, fmt.Sprintf("nic %s removed from vm %s", mac, v.Name))
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

// UpdateNic changes a running VM's NIC on its host first (link state,
// VLAN tags in place); if the host refuses, the record stays as it was.
func (s *Service) UpdateNic(ctx context.Context, req *acliv1.UpdateNicRequest) (*acliv1.Task, error) {
	if req.Mac == "" {
		return nil, apierr.BadField("mac", "mac is required: give the MAC of the NIC to change")
	}
	mac, err := ParseMAC(req.Mac)
	if err != nil {
		return nil, err
	}
	if req.VlanMode == acliv1.NetworkMode_NETWORK_MODE_UNSPECIFIED && !req.TrunkedNetworksSet && req.Connected == nil {
		return nil, apierr.BadField("mac", "nothing to update: give vlan_mode=, trunked_networks= or connected=")
	}
	e, err := s.beginVm(ctx, req.Vm, acliv1.TaskOperation_kVmNicUpdate)
	if err != nil {
		return nil, err
	}
	i, err := nicIndex(e.cur, mac)
	if err != nil {
		return e.fail(err)
	}
	next := proto.Clone(e.cur).(*acliv1.Vm)
	nic := next.Nics[i]
	if err := UpdateNic(nic, req); err != nil {
		return e.fail(err)
	}
	var host *acliv1.Host
	s.DB.View(func(tx *state.Tx) { host = tx.Host(e.cur.HostUuid) })
	if nu, ok := s.Hosts.(driver.NicUpdater); ok && host != nil && state.Placed(e.cur) {
		if err := nu.UpdateNic(ctx, host, next, nic); err != nil {
			return e.fail(fmt.Errorf("nic %s of vm %s: %w", mac, e.cur.Name, err))
		}
	}
	return e.commit(ctx, next, fmt.Sprintf("nic %s of vm %s updated (%s)", mac, e.cur.Name, NicText(nic)))
}

// UpdateNic applies req's VLAN and link settings to nic.
func UpdateNic(nic *acliv1.Nic, req *acliv1.UpdateNicRequest) error {
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
	kept, err := NicVLAN(mode, trunked)
	if err != nil {
		return err
	}
	nic.VlanMode, nic.TrunkedNetworks = mode, kept
	if req.Connected != nil {
		nic.Disconnected = !*req.Connected
	}
	return nil
}
