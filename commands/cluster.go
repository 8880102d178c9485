package commands

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/render"
)

func clusterCommands() []*Command {
	return []*Command{{
		Name:     "cluster.get",
		Summary:  "Show the cluster configuration",
		Output:   OutputBlock,
		Examples: []string{"cluster.get", "-o json cluster.get"},
		Run:      runClusterGet,
	}, {
		Name:     "cluster.status",
		Summary:  "Show the managers, which one leads, and the store's members and health",
		Output:   OutputBlock,
		Examples: []string{"cluster.status", "-o json cluster.status"},
		Run:      runClusterStatus,
	}}
}

func runClusterStatus(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	st, err := c.Cluster.GetClusterStatus(ctx, &acliv1.GetClusterStatusRequest{})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: st, Block: clusterStatusBlock(st)})
}

func runClusterGet(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	cl, err := c.Cluster.GetCluster(ctx, &acliv1.GetClusterRequest{})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: cl, Block: clusterBlock(cl)})
}
