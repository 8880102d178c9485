package readview_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/leader"
	"github.com/acli-dev/acli/manager/leader/readview"
	"github.com/acli-dev/acli/manager/managertest"
	"github.com/acli-dev/acli/manager/store/etcd"
	"github.com/acli-dev/acli/manager/store/etcd/etcdtest"
)

// sharedPair is a leader manager on etcd and a follower that knows no
// leader: whatever it answers, it answers from its own copy of the store.
type sharedPair struct {
	etcd     *etcdtest.Cluster
	leader   *grpc.ClientConn
	follower *grpc.ClientConn
	addr     string // the follower's TCP address
	views    *readview.Views
}

func startPair(t testing.TB, members, hosts int) *sharedPair {
	t.Helper()
	c := etcdtest.Start(t, members)
	ctx := context.Background()
	cfg := etcd.Config{Endpoints: c.Endpoints(), Namespace: "/views", OpTimeout: 2 * time.Second}
	es, err := etcd.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { es.Close() })
	el, err := es.NewElector(ctx, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := el.Campaign(ctx, "leader"); err != nil {
		t.Fatal(err)
	}
	lconn, _ := managertest.Start(t, managertest.Options{Hosts: hosts, Store: el.Store()})

	fs, err := etcd.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	mctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	mi := etcd.NewMirror(fs, manager.HistoryKeys...)
	go mi.Run(mctx, 200*time.Millisecond)
	views := readview.NewViews(mi, "sim", slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(views.Close)
	fw := leader.NewForwarder(func(context.Context) (string, error) { return "", errors.New("none elected in this test") })
	fw.Local = views.Route
	srv := grpc.NewServer(fw.ServerOptions()...)
	lis, err := net.Listen("tcp", "127.47.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	fconn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fconn.Close() })
	return &sharedPair{etcd: c, leader: lconn, follower: fconn, addr: lis.Addr().String(), views: views}
}

func createVm(t testing.TB, conn *grpc.ClientConn, name string) {
	t.Helper()
	if err := create(context.Background(), conn, name); err != nil {
		t.Fatalf("vm.create %s: %v", name, err)
	}
}

// create makes a VM; the create task ends with the call.
func create(ctx context.Context, conn *grpc.ClientConn, name string) error {
	task, err := acliv1.NewVmServiceClient(conn).CreateVm(ctx, &acliv1.CreateVmRequest{Name: name, MemoryBytes: 1 << 30, NumVcpus: 1})
	if err == nil && task.Status != acliv1.TaskStatus_kSucceeded {
		err = fmt.Errorf("task %s: %s", task.Status, task.Error)
	}
	return err
}

// TestFollowerAnswersReadsFromItsCopy: reads through a follower that knows
// no leader are answered, and see every change committed before they began
// (no sleeping for the copy to catch up); writes are refused.
func TestFollowerAnswersReadsFromItsCopy(t *testing.T) {
	p := startPair(t, 1, 3)
	ctx := context.Background()
	fvm := acliv1.NewVmServiceClient(p.follower)
	for i := range 5 {
		name := fmt.Sprintf("r%d", i)
		createVm(t, p.leader, name)
		var hdr metadata.MD
		v, err := fvm.GetVm(ctx, &acliv1.GetVmRequest{Vm: name}, grpc.Header(&hdr))
		if err != nil || v.GetName() != name {
			t.Fatalf("vm.get %s through the follower right after its creation: %v %v", name, v, err)
		}
		if s := hdr.Get(leader.StaleHeader); len(s) > 0 {
			t.Fatalf("an answer with the quorum up is marked stale: %s", s)
		}
	}
	hosts, err := acliv1.NewHostServiceClient(p.follower).ListHosts(ctx, &acliv1.ListHostsRequest{})
	if err != nil || len(hosts.GetHosts()) != 3 {
		t.Fatalf("host.list through the follower: %v %v", hosts, err)
	}
	// A write goes to the leader, and there is none known here.
	_, err = fvm.CreateVm(ctx, &acliv1.CreateVmRequest{Name: "w", MemoryBytes: 1 << 30, NumVcpus: 1})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no leader") {
		t.Fatalf("write through a follower with no leader: %v", err)
	}
	// Task reads go to the leader too (a client follows the task it just
	// started there).
	if _, err := acliv1.NewTaskServiceClient(p.follower).ListTasks(ctx, &acliv1.ListTasksRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("task.list through a follower with no leader: %v", err)
	}
}

// TestFollowerFollowsWritesWithoutRebuilding: after each write through the
// leader (a create, a rename, a power-on, a delete) a read through the
// follower answers the new state, from the one view built at the start and
// brought forward by the changes since.
func TestFollowerFollowsWritesWithoutRebuilding(t *testing.T) {
	p := startPair(t, 1, 3)
	ctx := context.Background()
	lvm, fvm := acliv1.NewVmServiceClient(p.leader), acliv1.NewVmServiceClient(p.follower)
	createVm(t, p.leader, "a")
	if _, err := fvm.GetVm(ctx, &acliv1.GetVmRequest{Vm: "a"}); err != nil {
		t.Fatal(err)
	}
	tasks := acliv1.NewTaskServiceClient(p.leader)
	done := func(task *acliv1.Task, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		st, err := tasks.WatchTask(ctx, &acliv1.GetTaskRequest{Uuid: task.Uuid})
		for err == nil && task.Status != acliv1.TaskStatus_kSucceeded && task.Status != acliv1.TaskStatus_kFailed {
			task, err = st.Recv()
		}
		if err != nil || task.Status != acliv1.TaskStatus_kSucceeded {
			t.Fatalf("task %v: %v", task, err)
		}
	}
	names := func() string {
		t.Helper()
		l, err := fvm.ListVms(ctx, &acliv1.ListVmsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range l.Vms {
			out = append(out, v.Name+":"+strings.TrimPrefix(v.PowerState.String(), "k"))
		}
		return strings.Join(out, " ")
	}
	createVm(t, p.leader, "b")
	if got := names(); got != "a:Off b:Off" {
		t.Fatalf("after a create: %q", got)
	}
	done(lvm.UpdateVm(ctx, &acliv1.UpdateVmRequest{Vm: "a", Name: proto.String("a2")}))
	if got := names(); got != "a2:Off b:Off" {
		t.Fatalf("after a rename: %q", got)
	}
	done(lvm.SetPowerState(ctx, &acliv1.SetPowerStateRequest{Vm: "b", Transition: acliv1.PowerTransition_kPowerOn}))
	if got := names(); got != "a2:Off b:On" {
		t.Fatalf("after a power-on: %q", got)
	}
	hosts, err := acliv1.NewHostServiceClient(p.follower).ListHosts(ctx, &acliv1.ListHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var vms int32
	for _, h := range hosts.Hosts {
		vms += h.NumVms
	}
	if vms != 1 {
		t.Errorf("the follower's hosts run %d VMs, want 1", vms)
	}
	done(lvm.DeleteVm(ctx, &acliv1.DeleteVmRequest{Vm: "a2"}))
	if got := names(); got != "b:On" {
		t.Fatalf("after a delete: %q", got)
	}
	if n := p.views.Builds(); n != 1 {
		t.Errorf("the view was built %d times, want once", n)
	}
}

// TestFollowerReadsWithoutQuorumAreMarkedStale: two of three members
// killed, a read answers the last state with the stale header; back, the
// answers are unmarked.
func TestFollowerReadsWithoutQuorumAreMarkedStale(t *testing.T) {
	p := startPair(t, 3, 3)
	ctx := context.Background()
	createVm(t, p.leader, "before")
	fvm := acliv1.NewVmServiceClient(p.follower)
	if _, err := fvm.GetVm(ctx, &acliv1.GetVmRequest{Vm: "before"}); err != nil {
		t.Fatal(err)
	}
	p.etcd.Members[1].Kill()
	p.etcd.Members[2].Kill()
	var hdr metadata.MD
	list, err := fvm.ListVms(ctx, &acliv1.ListVmsRequest{}, grpc.Header(&hdr))
	if err != nil || len(list.GetVms()) != 1 || list.GetVms()[0].Name != "before" {
		t.Fatalf("vm.list without quorum: %v %v", list, err)
	}
	stale := hdr.Get(leader.StaleHeader)
	if len(stale) != 1 || !strings.Contains(stale[0], "may be stale") {
		t.Fatalf("stale header %q", stale)
	}
	t.Logf("without quorum: %s", stale[0])
	for _, m := range p.etcd.Members[1:] {
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	// Back: the answers are current again (this test's leader may have
	// lost its lease meanwhile; writes resuming is the e2e test's).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var hdr metadata.MD
		v, err := fvm.GetVm(ctx, &acliv1.GetVmRequest{Vm: "before"}, grpc.Header(&hdr))
		if err == nil && v.Name == "before" && len(hdr.Get(leader.StaleHeader)) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still stale 30s after the members came back: %v %v", hdr.Get(leader.StaleHeader), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// BenchmarkFollowerListHosts is host.list of a 16-host cluster on a
// 3-member etcd, asked of a follower that answers from its own copy: one
// quorum read of the store's revision, then the copy.
func BenchmarkFollowerListHosts(b *testing.B) {
	p := startPair(b, 3, 16)
	c, err := client.Dial(context.Background(), client.Options{Addr: p.addr})
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
}
