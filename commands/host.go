package commands

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
	"google.golang.org/protobuf/proto"
)

// hostCommands is the host namespace: listing here, maintenance in
// maint.go, joining and removing hosts in hostadd.go.
func hostCommands() []*Command {
	cmds := []*Command{
		{
			Name:     "host.list",
			Summary:  "List hypervisor hosts",
			Args:     []Arg{{Name: "pattern", Kind: KindHost, Many: true, Optional: true, Filter: true, Help: "only the hosts these name (host name, UUID or hypervisor IP; globs, ranges and comma lists)"}},
			Output:   OutputTable,
			Watch:    true,
			Examples: []string{"host.list", "host.list 'node-*'", "-w host.list", "--no-headers -o csv host.list"},
			Run:      runHostList,
		},
		{
			Name:     "host.get",
			Summary:  "Show hosts in detail",
			Args:     []Arg{{Name: "host", Kind: KindHost, Many: true, Help: "host name, UUID or hypervisor IP"}},
			Output:   OutputBlock,
			Examples: []string{"host.get 127.20.0.21", "host.get node*"},
			Run:      runHostGet,
		},
		{
			Name:     "host.list_vms",
			Summary:  "List the VMs on a host",
			Args:     []Arg{{Name: "host", Kind: KindHost, Help: "host name, UUID or hypervisor IP"}},
			Output:   OutputTable,
			Examples: []string{"host.list_vms 127.20.0.21"},
			Run:      runHostListVMs,
		},
	}
	cmds = append(cmds, hostMaintCommands()...)
	return append(cmds, hostJoinCommands()...)
}

func runHostList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	read := func(ctx context.Context) ([]*acliv1.Host, error) {
		resp, err := c.Host.ListHosts(ctx, &acliv1.ListHostsRequest{})
		return resp.GetHosts(), err
	}
	if r.Globals.Watch {
		return watchList(ctx, r, c, read, read, hostTable)
	}
	hosts, err := read(ctx)
	if err != nil {
		return err
	}
	hosts = filterRows(r, hosts)
	return r.Print(render.Doc{Data: hostListData(hosts), Table: hostTable(hosts)})
}

func runHostGet(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	return getEach(ctx, r, r.Targets(0), func(ctx context.Context, id string) (*acliv1.Host, error) {
		return c.Host.GetHost(ctx, &acliv1.GetHostRequest{Host: id})
	}, hostBlock)
}

func runHostListVMs(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Vm.ListVms(ctx, &acliv1.ListVmsRequest{Host: r.Arg(0)})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: resp.GetVms(), Table: vmTable(resp.GetVms())})
}

// getEach fetches every target and prints one block per entity (titled
// by name when there are several); data is the list of entities.
func getEach[T proto.Message](ctx context.Context, r *Req, targets []Target, get func(context.Context, string) (T, error), block func(T) *render.Block) error {
	items := make([]T, 0, len(targets))
	out := &render.Block{}
	for _, t := range targets {
		it, err := get(ctx, t.ID)
		if err != nil {
			err = client.Wrap(err)
			if len(targets) > 1 {
				return r.labelErr(targets, t, err)
			}
			return err
		}
		items = append(items, it)
		if len(targets) == 1 {
			out = block(it)
		} else {
			out.Fields = append(out.Fields, render.Field{Key: t.Name, Children: block(it)})
		}
	}
	return r.Print(acliGetDoc(ctx, r, items, out))
}
