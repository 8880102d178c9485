// Command bareclient is the floor acli's one-shot speed is measured
// against: one gRPC call (host.list or vm.list) and its names printed,
// nothing else.
package main

import (
	"context"
	"fmt"
	"os"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	conn, err := grpc.NewClient("passthrough:///"+os.Getenv("ACLI_SERVER"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	ctx := context.Background()
	switch os.Args[1] {
	case "host.list":
		r, err := acliv1.NewHostServiceClient(conn).ListHosts(ctx, &acliv1.ListHostsRequest{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, h := range r.Hosts {
			fmt.Println(h.Name, h.HypervisorIp, h.NodeState)
		}
	case "vm.list":
		r, err := acliv1.NewVmServiceClient(conn).ListVms(ctx, &acliv1.ListVmsRequest{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, v := range r.Vms {
			fmt.Println(v.Name, v.Uuid, v.PowerState, v.HostName)
		}
	}
}
