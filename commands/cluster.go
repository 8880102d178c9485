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
	}}
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
