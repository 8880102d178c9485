package commands

import (
	"context"

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
				{Name: "ip_config", Type: TypeString, Help: "network address with prefix", Example: "10.1.0.0/24"},
			},
			Output:   OutputTask,
			Examples: []string{"net.create vlan100 vlan=100", "net.create trunk1 mode=trunked"},
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
	}
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
