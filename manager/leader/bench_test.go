package leader_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/leader"
	"github.com/acli-dev/acli/manager/managertest"
)

// BenchmarkListHosts measures host.list of a 16-host cluster over loopback
// TCP, asked of the leader directly and of a follower that forwards it.
func BenchmarkListHosts(b *testing.B) {
	h := managertest.New(b, managertest.Options{Hosts: 16})
	lis, err := net.Listen("tcp", "127.47.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	h.Manager.Register(srv)
	go srv.Serve(lis)
	b.Cleanup(srv.Stop)
	leaderAddr := lis.Addr().String()

	fw := leader.NewForwarder(func(context.Context) (string, error) { return leaderAddr, nil })
	b.Cleanup(fw.Close)
	fsrv := grpc.NewServer(fw.ServerOptions()...)
	healthpb.RegisterHealthServer(fsrv, health.NewServer())
	flis, err := net.Listen("tcp", "127.47.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go fsrv.Serve(flis)
	b.Cleanup(fsrv.Stop)

	for _, tc := range []struct{ name, addr string }{{"leader", leaderAddr}, {"follower", flis.Addr().String()}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := client.Dial(context.Background(), client.Options{Addr: tc.addr})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for b.Loop() {
				resp, err := c.Host.ListHosts(context.Background(), &acliv1.ListHostsRequest{})
				if err != nil || len(resp.GetHosts()) != 16 {
					b.Fatalf("ListHosts: %d hosts, %v", len(resp.GetHosts()), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/list")
		})
	}
}
