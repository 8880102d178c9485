package leader_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/client/clienttest"
	"github.com/acli-dev/acli/manager/leader"
)

// follower serves a forwarder on loopback and returns a client of it.
func follower(t *testing.T, lookup leader.Lookup) *client.Client {
	t.Helper()
	f := leader.NewForwarder(lookup)
	t.Cleanup(f.Close)
	srv := grpc.NewServer(f.ServerOptions()...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.50.6.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	c, err := client.Dial(context.Background(), client.Options{Addr: lis.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestForwardsUnaryAndStreams(t *testing.T) {
	fake := clienttest.New()
	addr := fake.ServeTCP(t)
	c := follower(t, func(context.Context) (string, error) { return addr, nil })
	ctx := context.Background()

	var hdr metadata.MD
	hosts, err := c.Host.ListHosts(ctx, &acliv1.ListHostsRequest{}, grpc.Header(&hdr))
	if err != nil || len(hosts.GetHosts()) == 0 {
		t.Fatalf("ListHosts through the follower: %v, %v", hosts, err)
	}
	if got := hdr.Get(leader.LeaderHeader); len(got) != 1 || got[0] != addr {
		t.Fatalf("leader header %v, want %s", got, addr)
	}
	task, err := c.Vm.CreateVm(ctx, &acliv1.CreateVmRequest{Name: "fwd01", NumVcpus: 1, MemoryBytes: 512 << 20})
	if err != nil {
		t.Fatalf("CreateVm through the follower: %v", err)
	}
	stream, err := c.Task.WatchTask(ctx, &acliv1.GetTaskRequest{Uuid: task.GetUuid()})
	if err != nil {
		t.Fatal(err)
	}
	var last *acliv1.Task
	for {
		tk, err := stream.Recv()
		if err != nil {
			break
		}
		last = tk
	}
	if last.GetStatus() != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("followed task ended %v", last)
	}
	if fake.Calls("CreateVm") != 1 {
		t.Fatalf("leader saw %d CreateVm calls, want 1", fake.Calls("CreateVm"))
	}
	// The leader's errors come back unchanged.
	_, err = c.Vm.GetVm(ctx, &acliv1.GetVmRequest{Vm: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("GetVm of a missing VM = %v, want NotFound", err)
	}
}

func TestNoLeaderIsUnavailable(t *testing.T) {
	var calls atomic.Int32
	c := follower(t, func(context.Context) (string, error) {
		calls.Add(1)
		return "", errors.New("election in progress")
	})
	_, err := c.Host.ListHosts(context.Background(), &acliv1.ListHostsRequest{})
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() == "" {
		t.Fatalf("without a leader: %v, want Unavailable", err)
	}
	if calls.Load() == 0 {
		t.Fatal("leader never looked up")
	}
}

func TestUnreachableLeaderIsNamed(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.50.6.1:0")
	dead := lis.Addr().String()
	lis.Close()
	c := follower(t, func(context.Context) (string, error) { return dead, nil })
	var tr metadata.MD
	_, err := c.Host.ListHosts(context.Background(), &acliv1.ListHostsRequest{}, grpc.Trailer(&tr))
	if st := status.Convert(err); st.Code() != codes.Unavailable {
		t.Fatalf("dead leader: %v, want Unavailable", err)
	}
	if got := tr.Get(leader.LeaderHeader); len(got) != 1 || got[0] != dead {
		t.Fatalf("trailer %v does not name the leader %s", tr, dead)
	}
}
