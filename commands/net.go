package commands

import (
	"context"
	"strings"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
)

var networkModes = []EnumValue{
	{Name: "kAccess", Aliases: []string{"access"}, Value: int32(acliv1.NetworkMode_kAccess)},
	{Name: "kTrunked", Aliases: []string{"trunked", "trunk"}, Value: int32(acliv1.NetworkMode_kTrunked)},
}

func netCommands() []*Command {
	return []*Command{
		{
			Name:    "net.create",
			Summary: "Create a VM network",
			Args:    []Arg{{Name: "name", Kind: KindNetwork, Generate: true, Help: "name of the new network"}},
			Keys: []Key{
				{Name: "vlan", Type: TypeInt, Default: "0", Min: 0, Max: 4094, Help: "VLAN ID (0: native)"},
				{Name: "mode", Type: TypeEnum, Enum: networkModes, Default: "kAccess", Help: "how VLANs reach VMs"},
				{Name: "vswitch_name", Type: TypeString, Help: "virtual switch (default vs0)", Example: "vs0"},
				{Name: "ip_config", Type: TypeString, Help: "gateway with prefix: NICs then take addresses from the network's DHCP pools", Example: "10.1.0.1/24"},
			},
			Output:   OutputTask,
			Examples: []string{"net.create vlan100 vlan=100", "net.create prod vlan=10 ip_config=10.1.0.1/24", "net.create trunk1 mode=trunked"},
			Run:      runNetCreate,
		},
		{
			Name:     "net.list",
			Summary:  "List VM networks",
			Args:     []Arg{{Name: "pattern", Kind: KindNetwork, Many: true, Optional: true, Filter: true, Help: "only the networks these name (network name or UUID; globs, ranges and comma lists)"}},
			Output:   OutputTable,
			Examples: []string{"net.list"},
			Run:      runNetList,
		},
		{
			Name:     "net.get",
			Summary:  "Show networks in detail",
			Args:     []Arg{{Name: "network", Kind: KindNetwork, Many: true, Help: "network name or UUID"}},
			Output:   OutputBlock,
			Examples: []string{"net.get vlan100"},
			Run:      runNetGet,
		},
		{
			Name:        "net.delete",
			Summary:     "Delete networks that no NIC uses",
			Args:        []Arg{{Name: "network", Kind: KindNetwork, Many: true, Help: "network name or UUID"}},
			Destructive: "Delete",
			Output:      OutputTask,
			Examples:    []string{"net.delete vlan100", "-y net.delete test*"},
			Run:         runNetDelete,
		},
		{
			Name:    "net.add_dhcp_pool",
			Summary: "Add an address range NICs take addresses from",
			Args:    []Arg{{Name: "network", Kind: KindNetwork, Help: "network name or UUID (created with ip_config=)"}},
			Keys: []Key{
				{Name: "start", Type: TypeString, Required: true, Help: "first address of the range", Example: "10.1.0.50"},
				{Name: "end", Type: TypeString, Required: true, Help: "last address of the range", Example: "10.1.0.125"},
			},
			Output:   OutputTask,
			Examples: []string{"net.add_dhcp_pool prod start=10.1.0.50 end=10.1.0.125"},
			Run:      runNetAddDhcpPool,
		},
		{
			Name:    "net.update_dhcp_dns",
			Summary: "Set the DNS servers and search domains a network hands out",
			Args:    []Arg{{Name: "network", Kind: KindNetwork, Help: "network name or UUID"}},
			Keys: []Key{
				{Name: "servers", Type: TypeList, Help: "DNS server addresses (empty clears)", Example: "10.1.0.10,10.1.0.11"},
				{Name: "domains", Type: TypeList, Help: "search domains (empty clears)", Example: "example.local"},
			},
			Output: OutputTask,
			Validate: func(inv *Invocation) error {
				if !inv.Set["servers"] && !inv.Set["domains"] {
					return usageErrorf("net.update_dhcp_dns: nothing to update: give servers= and/or domains=")
				}
				return nil
			},
			Examples: []string{"net.update_dhcp_dns prod servers=10.1.0.10,10.1.0.11 domains=example.local"},
			Run:      runNetUpdateDhcpDns,
		},
		{
			Name:     "net.list_vms",
			Summary:  "List the VMs with a NIC on a network",
			Args:     []Arg{{Name: "network", Kind: KindNetwork, Help: "network name or UUID"}},
			Output:   OutputTable,
			Examples: []string{"net.list_vms prod"},
			Run:      runNetListVms,
		},
		{
			Name:     "net.get_virtual_switch",
			Summary:  "Show a virtual switch",
			Args:     []Arg{{Name: "vswitch", Kind: kindVswitch, Optional: true, Help: "virtual switch (default vs0)"}},
			Output:   OutputBlock,
			Examples: []string{"net.get_virtual_switch vs0"},
			Run:      runNetGetVswitch,
		},
		{
			Name:    "net.update_virtual_switch",
			Summary: "Change a virtual switch's MTU, bond or uplinks",
			Args:    []Arg{{Name: "vswitch", Kind: kindVswitch, Optional: true, Help: "virtual switch (default vs0)"}},
			Keys: []Key{
				{Name: "mtu", Type: TypeInt, Min: 576, Max: 9216, Help: "MTU of the bridge and its NICs", Example: "9000"},
				{Name: "bond_type", Type: TypeEnum, Enum: bondTypes, Help: "bond of the uplinks"},
				{Name: "lacp", Type: TypeBool, Help: "LACP on the bond (kBalanceTcp)"},
				{Name: "uplinks", Type: TypeList, Help: "host interfaces bonded as uplinks", Example: "eth0,eth1"},
				{Name: "bridge_name", Type: TypeString, Help: "host bridge", Example: "br0"},
				{Name: "description", Type: TypeString, Help: "description"},
				{Name: "active_uplink", Type: TypeString, Help: "the interface each host's active-backup bond uses: '{<host>:<interface>; ...}' (host by name, UUID or IP)", Example: "'{h1:eth0; h2:eth1}'"},
			},
			Output: OutputTask,
			Examples: []string{"net.update_virtual_switch vs0 mtu=9000", "net.update_virtual_switch vs0 bond_type=kBalanceTcp lacp=true",
				"net.update_virtual_switch vs0 active_uplink='{h1:eth0;h2:eth1}'"},
			Run: runNetUpdateVswitch,
		},
	}
}

// kindVswitch names virtual switches in help; vs0 is the cluster's.
const kindVswitch Kind = "vswitch"

var bondTypes = []EnumValue{
	{Name: "kActiveBackup", Aliases: []string{"active-backup", "active_backup"}, Value: 1},
	{Name: "kBalanceSlb", Aliases: []string{"balance-slb", "balance_slb"}, Value: 2},
	{Name: "kBalanceTcp", Aliases: []string{"balance-tcp", "balance_tcp"}, Value: 3},
	{Name: "kNone", Aliases: []string{"none"}, Value: 4},
}

func runNetAddDhcpPool(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.Network.AddDhcpPool(ctx, &acliv1.AddDhcpPoolRequest{Network: t.ID, Start: r.String("start"), End: r.String("end")})
	})
}

func runNetUpdateDhcpDns(ctx context.Context, r *Req) error {
	req := &acliv1.UpdateDhcpDnsRequest{}
	if r.Has("servers") {
		req.Servers = proto.String(strings.Join(r.List("servers"), ","))
	}
	if r.Has("domains") {
		req.Domains = proto.String(strings.Join(r.List("domains"), ","))
	}
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		req := proto.Clone(req).(*acliv1.UpdateDhcpDnsRequest)
		req.Network = t.ID
		return c.Network.UpdateDhcpDns(ctx, req)
	})
}

func runNetListVms(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Network.ListNetworkVms(ctx, &acliv1.ListNetworkVmsRequest{Network: r.Arg(0)})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: resp.GetVms(), Table: netVmsTable(resp.GetVms())})
}

func runNetGetVswitch(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	name := r.Arg(0)
	if name == "" {
		name = "vs0"
	}
	return getEach(ctx, r, []Target{{ID: name, Name: name}}, func(ctx context.Context, id string) (*acliv1.VirtualSwitch, error) {
		return c.Network.GetVirtualSwitch(ctx, &acliv1.GetVirtualSwitchRequest{Name: id})
	}, vswitchBlock)
}

func runNetUpdateVswitch(ctx context.Context, r *Req) error {
	name := r.Arg(0)
	if name == "" {
		name = "vs0"
	}
	req := &acliv1.UpdateVirtualSwitchRequest{Name: name}
	if r.Has("mtu") {
		req.Mtu = proto.Int32(r.Int32("mtu"))
	}
	if r.Has("bond_type") {
		req.BondType = proto.String(enumName(bondTypes, r.Int("bond_type")))
	}
	if r.Has("lacp") {
		req.Lacp = proto.Bool(r.Bool("lacp"))
	}
	if r.Has("uplinks") {
		req.Uplinks = proto.String(strings.Join(r.List("uplinks"), ","))
	}
	if r.Has("bridge_name") {
		req.BridgeName = proto.String(r.String("bridge_name"))
	}
	if r.Has("description") {
		req.Description = proto.String(r.String("description"))
	}
	if r.Has("active_uplink") {
		req.ActiveUplink = proto.String(r.String("active_uplink"))
	}
	return r.EachTask(ctx, []Target{{ID: name, Name: name}}, func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.Network.UpdateVirtualSwitch(ctx, req)
	})
}

func enumName(vals []EnumValue, v int64) string {
	for _, e := range vals {
		if int64(e.Value) == v {
			return e.Name
		}
	}
	return ""
}

func runNetCreate(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.Network.CreateNetwork(ctx, &acliv1.CreateNetworkRequest{
			Name:        t.ID,
			VlanId:      r.Int32("vlan"),
			Mode:        acliv1.NetworkMode(r.Int("mode")),
			VswitchName: r.String("vswitch_name"),
			IpConfig:    r.String("ip_config"),
		})
	})
}

func runNetList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Network.ListNetworks(ctx, &acliv1.ListNetworksRequest{})
	if err != nil {
		return err
	}
	nets := filterRows(r, resp.GetNetworks())
	return r.Print(render.Doc{Data: netListData(nets), Table: netTable(nets)})
}

func runNetGet(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	return getEach(ctx, r, r.Targets(0), func(ctx context.Context, id string) (*acliv1.Network, error) {
		return c.Network.GetNetwork(ctx, &acliv1.GetNetworkRequest{Network: id})
	}, netBlock)
}

func runNetDelete(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.Network.DeleteNetwork(ctx, &acliv1.DeleteNetworkRequest{Network: t.ID})
	})
}
