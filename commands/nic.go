package commands

import (
	"context"
	"net"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
)

// kindMAC names NICs by MAC address in help; they are not listed entities.
const kindMAC Kind = "mac"

// macArg is acli's positional MAC (vm.nic_delete <vm> <mac>); mac= works too.
var macArg = Arg{Name: "mac", Kind: kindMAC, Optional: true, Help: "MAC address of the NIC (or mac=)"}

// macKey is mac=, the MAC given as a key instead of the second argument.
var macKey = Key{Name: "mac", Type: TypeString, Help: "MAC address of the NIC (or as the second argument)", Example: "50:6b:8d:00:00:01"}

// macOf is the NIC's MAC from the second positional or mac=.
func macOf(inv *Invocation) string {
	if len(inv.Args) > 1 && len(inv.Args[1]) > 0 {
		return inv.Args[1][0]
	}
	return inv.Values["mac"].Raw
}

func validateMAC(inv *Invocation) error {
	pos := ""
	if len(inv.Args) > 1 && len(inv.Args[1]) > 0 {
		pos = inv.Args[1][0]
	}
	key := inv.Values["mac"].Raw
	switch {
	case pos == "" && !inv.Set["mac"]:
		return usageErrorf("%s: missing MAC address: give it as the second argument or mac=, e.g. %s web01 50:6b:8d:00:00:01", inv.Cmd.Name, inv.Cmd.Name)
	case pos != "" && inv.Set["mac"] && !strings.EqualFold(pos, key):
		return usageErrorf("%s: two MAC addresses given (%s and mac=%s); give one", inv.Cmd.Name, pos, key)
	}
	mac := macOf(inv)
	if _, err := net.ParseMAC(mac); err != nil {
		return usageErrorf("%s: %q is not a MAC address (e.g. 50:6b:8d:00:00:01)", inv.Cmd.Name, mac)
	}
	return nil
}

// A NIC's VLAN settings and link state (vm.nic_create, vm.nic_update).
var (
	vlanModeKey  = Key{Name: "vlan_mode", Type: TypeEnum, Enum: networkModes, Help: "kAccess: untagged on the network's VLAN; kTrunked: tagged, with trunked_networks"}
	trunkedKey   = Key{Name: "trunked_networks", Type: TypeList, Help: "VLAN IDs a kTrunked NIC carries besides its network's", Example: "10,20,30"}
	connectedKey = Key{Name: "connected", Type: TypeBool, Help: "link state: false leaves the NIC in place with no carrier"}
)

// trunkOf is trunked_networks= as VLAN IDs (validateTrunk checked them).
func trunkOf(inv *Invocation) []int32 {
	var out []int32
	for _, s := range inv.Values["trunked_networks"].List {
		n, _ := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
		out = append(out, int32(n))
	}
	return out
}

func validateTrunk(inv *Invocation) error {
	for _, s := range inv.Values["trunked_networks"].List {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
		if err != nil || n < 0 || n > 4094 {
			return usageErrorf("%s: trunked_networks: %q is not a VLAN ID (0 to 4094), e.g. trunked_networks=10,20,30", inv.Cmd.Name, s)
		}
	}
	if inv.Set["trunked_networks"] && len(inv.Values["trunked_networks"].List) > 0 && inv.Set["vlan_mode"] &&
		inv.Values["vlan_mode"].Int == int64(acliv1.NetworkMode_kAccess) {
		return usageErrorf("%s: trunked_networks needs vlan_mode=kTrunked (an access NIC carries only its network's VLAN)", inv.Cmd.Name)
	}
	return nil
}

func nicCommands() []*Command {
	return []*Command{
		{
			Name:     "vm.nic_get",
			Summary:  "Show a VM's NICs in detail",
			Args:     []Arg{vmOneArg, macArg},
			Keys:     []Key{{Name: "mac", Type: TypeString, Help: "MAC address of the NIC (or as the second argument; default all)", Example: "50:6b:8d:00:00:01"}},
			Output:   OutputBlock,
			Examples: []string{"vm.nic_get web01", "vm.nic_get web01 50:6b:8d:00:00:01"},
			Run:      runVMNicGet,
		},
		{
			Name:    "vm.nic_update",
			Summary: "Change a NIC's VLAN mode, trunked VLANs or link state",
			Args:    []Arg{vmOneArg, macArg},
			Keys: []Key{
				macKey,
				vlanModeKey, trunkedKey, connectedKey,
				{Name: "update_vlan_trunk_info", Type: TypeBool, Help: "replace the trunked VLANs with trunked_networks= (none given: clear them)"},
			},
			Output: OutputTask,
			Validate: func(inv *Invocation) error {
				if err := validateMAC(inv); err != nil {
					return err
				}
				if !inv.Set["vlan_mode"] && !inv.Set["trunked_networks"] && !inv.Set["connected"] && !inv.Set["update_vlan_trunk_info"] {
					return usageErrorf("vm.nic_update: nothing to update: give vlan_mode=, trunked_networks= or connected=")
				}
				return validateTrunk(inv)
			},
			Examples: []string{"vm.nic_update web01 50:6b:8d:00:00:01 connected=false",
				"vm.nic_update web01 50:6b:8d:00:00:01 vlan_mode=kTrunked trunked_networks=10,20",
				"vm.nic_update web01 50:6b:8d:00:00:01 vlan_mode=kAccess update_vlan_trunk_info=true"},
			Run: runVMNicUpdate,
		},
	}
}

func runVMNicGet(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	vm, err := c.Vm.GetVm(ctx, &acliv1.GetVmRequest{Vm: r.Arg(0)})
	if err != nil {
		return err
	}
	nics := vm.GetNics()
	if mac := macOf(r.Inv); mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return usageErrorf("vm.nic_get: %q is not a MAC address (e.g. 50:6b:8d:00:00:01)", mac)
		}
		var have []string
		nics = nil
		for _, n := range vm.GetNics() {
			if n.GetMac() == hw.String() {
				nics = append(nics, n)
			}
			have = append(have, n.GetMac())
		}
		if len(nics) == 0 {
			if len(have) == 0 {
				have = []string{"none"}
			}
			return client.Errorf(client.ExitNotFound, "vm %s has no NIC %s (NICs: %s)", vm.GetName(), hw, strings.Join(have, ", "))
		}
	}
	block := &render.Block{}
	for _, n := range nics {
		block.Fields = append(block.Fields, render.Field{Key: n.GetMac(), Children: nicBlock(n)})
	}
	if len(nics) == 1 {
		block = nicBlock(nics[0])
	}
	return r.Print(acliGetDoc(ctx, r, nics, block))
}

func runVMNicUpdate(ctx context.Context, r *Req) error {
	req := &acliv1.UpdateNicRequest{Mac: macOf(r.Inv), VlanMode: acliv1.NetworkMode(r.Int("vlan_mode"))}
	if r.Has("trunked_networks") || r.Bool("update_vlan_trunk_info") {
		req.TrunkedNetworks, req.TrunkedNetworksSet = trunkOf(r.Inv), true
	}
	if r.Has("connected") {
		req.Connected = proto.Bool(r.Bool("connected"))
	}
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		req := proto.Clone(req).(*acliv1.UpdateNicRequest)
		req.Vm = t.ID
		return c.Vm.UpdateNic(ctx, req)
	})
}
