package client

import (
	"context"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// manager is a minimal clusterd: GetCluster answers its name, or err while
// set; CreateNetwork counts calls and answers err while set.
type manager struct {
	acliv1.UnimplementedClusterServiceServer
	acliv1.UnimplementedNetworkServiceServer
	name string

	mu      sync.Mutex
	err     error
	updates int
}

func (m *manager) GetCluster(context.Context, *acliv1.GetClusterRequest) (*acliv1.Cluster, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		err := m.err
		m.err = nil // the next call succeeds
		return nil, err
	}
	return &acliv1.Cluster{Name: m.name}, nil
}

func (m *manager) CreateNetwork(context.Context, *acliv1.CreateNetworkRequest) (*acliv1.Task, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.updates++
	return nil, m.err
}

func serve(t *testing.T, m *manager) (string, *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.50.5.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	acliv1.RegisterClusterServiceServer(srv, m)
	acliv1.RegisterNetworkServiceServer(srv, m)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), srv
}

func deadAddr(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.50.5.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func clusterName(t *testing.T, c *Client) string {
	t.Helper()
	cl, err := c.Cluster.GetCluster(context.Background(), &acliv1.GetClusterRequest{})
	if err != nil {
		t.Fatalf("GetCluster: %v", err)
	}
	return cl.GetName()
}

func TestServerListSkipsADeadManagerAndFailsOver(t *testing.T) {
	a, srvA := serve(t, &manager{name: "a"})
	b, _ := serve(t, &manager{name: "b"})
	c, err := Dial(context.Background(), Options{Addr: deadAddr(t) + ", " + a + "," + b})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := clusterName(t, c); got != "a" {
		t.Fatalf("answered by %s, want the first live manager a", got)
	}
	srvA.Stop()
	if got := clusterName(t, c); got != "b" {
		t.Fatalf("after a stopped, answered by %s, want b", got)
	}
}

func TestServerListAllDead(t *testing.T) {
	list := deadAddr(t) + "," + deadAddr(t)
	_, err := Dial(context.Background(), Options{Addr: list})
	if ExitCode(err) != ExitUnreachable || err.Error() != "cannot reach clusterd at "+list+": connection refused" {
		t.Fatalf("Dial = %v (exit %d)", err, ExitCode(err))
	}
}

func TestRetriesWhatWasNotDone(t *testing.T) {
	m := &manager{name: "a", err: status.Error(codes.Unavailable, "this manager is not the leader and no leader is known (election in progress); retry")}
	a, _ := serve(t, m)
	c, err := Dial(context.Background(), Options{Addr: a})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := clusterName(t, c); got != "a" {
		t.Fatalf("got %s", got)
	}

	// A change whose outcome is unknown is reported, not repeated.
	m.mu.Lock()
	m.err = status.Error(codes.Unavailable, "error reading from server: EOF")
	m.mu.Unlock()
	c2, err := Dial(context.Background(), Options{Addr: a + "," + deadAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_, err = c2.Network.CreateNetwork(context.Background(), &acliv1.CreateNetworkRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("CreateNetwork = %v, want Unavailable", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.updates != 1 {
		t.Fatalf("CreateNetwork sent %d times, want 1", m.updates)
	}
}

func TestRetryable(t *testing.T) {
	unav := func(msg string) error { return status.Error(codes.Unavailable, msg) }
	for _, tc := range []struct {
		method  string
		err     error
		several bool
		want    bool
	}{
		{"/acli.v1.VmService/CreateVm", unav("this manager is not the leader; the write was refused"), false, true},
		{"/acli.v1.VmService/CreateVm", unav("clusterd is shutting down"), false, true},
		{"/acli.v1.VmService/CreateVm", unav("error reading from server: EOF"), true, false},
		{"/acli.v1.VmService/CreateVm", unav(`connection error: desc = "transport: Error while dialing: dial tcp: connect: connection refused"`), true, true},
		{"/acli.v1.VmService/CreateVm", unav(`connection error: desc = "transport: Error while dialing: dial tcp: connect: connection refused"`), false, false},
		{"/acli.v1.VmService/ListVms", unav("error reading from server: EOF"), true, true},
		{"/acli.v1.VmService/ListVms", unav("error reading from server: EOF"), false, false},
		{"/acli.v1.VmService/GetVm", unav("this manager forwards to the leader x, which did not answer"), false, true},
		{"/acli.v1.VmService/GetVm", status.Error(codes.NotFound, "no leader"), true, false},
	} {
		if got := retryable(tc.method, tc.err, tc.several); got != tc.want {
			t.Errorf("retryable(%s, %v, several=%v) = %v, want %v", tc.method, tc.err, tc.several, got, tc.want)
		}
	}
}
