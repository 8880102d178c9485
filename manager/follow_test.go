package manager_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

// recorder passes a store's transactions through and, once on, keeps
// their writes as the events a follower's watch would see: one batch per
// transaction.
type recorder struct {
	store.Store
	mu     sync.Mutex
	on     bool
	writes [][]store.Event
}

func (r *recorder) Txn(ctx context.Context, conds []store.Cond, ops []store.Op) (int64, error) {
	r.mu.Lock() // in commit order
	defer r.mu.Unlock()
	rev, err := r.Store.Txn(ctx, conds, ops)
	if err != nil || !r.on {
		return rev, err
	}
	var evs []store.Event
	for _, op := range ops {
		if strings.HasPrefix(op.Key, "/tasks/") || strings.HasPrefix(op.Key, "/event") {
			continue // history: a follower's copy leaves it out
		}
		evs = append(evs, store.Event{KV: store.KV{Key: op.Key, Value: op.Value, ModRev: rev}, Delete: op.Delete})
	}
	r.writes = append(r.writes, evs)
	return rev, nil
}

func (r *recorder) start() {
	r.mu.Lock()
	r.on = true
	r.mu.Unlock()
}

func (r *recorder) recorded() [][]store.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}

// recordingLeader is a 3-host manager over a recorder.
func recordingLeader(t testing.TB) (*managertest.Harness, *recorder) {
	t.Helper()
	st, err := bolt.Open(t.TempDir(), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Store: st}
	return managertest.New(t, managertest.Options{Hosts: 3, Store: rec}), rec
}

// readOnly is a read-only manager over st, as a follower's view is.
func readOnly(t testing.TB, st store.Store) *manager.Manager {
	t.Helper()
	drv, err := sim.New(sim.ForHosts(3), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := manager.New(manager.Config{Store: keepOpen{st}, Driver: drv, ReadOnly: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// keepOpen lets several read-only managers share one store: the manager
// closes its store on Close, the store's owner closes it once.
type keepOpen struct{ store.Store }

func (keepOpen) Close() error { return nil }

func serve(t testing.TB, m *manager.Manager) *grpc.ClientConn {
	t.Helper()
	srv := grpc.NewServer()
	m.Register(srv)
	lis := bufconn.Listen(1 << 20)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///ro",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestReadOnlyManagerFollowsWrites: a read-only manager loaded before a
// series of writes and then given their changes answers as the writer
// does: VMs created, renamed, powered on and deleted, a network, a VM
// group, an image, a volume group.
func TestReadOnlyManagerFollowsWrites(t *testing.T) {
	h, rec := recordingLeader(t)
	c := newClients(h.Conn)
	createVm(t, c, "gone", gib)
	ro := readOnly(t, rec.Store)
	rec.start()
	createVm(t, c, "a", gib)
	createVm(t, c, "b", 2*gib)
	succeed(t, c)(power(c, "a", acliv1.PowerTransition_kPowerOn))
	succeed(t, c)(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "b", Name: proto.String("b2")}))
	succeed(t, c)(c.vm.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "gone"}))
	succeed(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "n1", VlanId: 10}))
	succeed(t, c)(c.vm.CreateVmGroup(bg, &acliv1.CreateVmGroupRequest{Name: "g1"}))
	vg := vgClient(h)
	makeVg(t, c, vg, "vg1", 1)

	writes := rec.recorded()
	if len(writes) < 8 {
		t.Fatalf("%d writes recorded", len(writes))
	}
	for _, evs := range writes {
		if err := ro.Follow(evs); err != nil {
			t.Fatal(err)
		}
	}
	fconn := serve(t, ro)
	follower := newClients(fconn)
	lv, _ := c.vm.ListVms(bg, &acliv1.ListVmsRequest{})
	fv, err := follower.vm.ListVms(bg, &acliv1.ListVmsRequest{})
	if err != nil || !proto.Equal(lv, fv) {
		t.Fatalf("vm.list: follower %v (%v), writer %v", fv, err, lv)
	}
	if names := vmNames(fv); names != "a b2" {
		t.Errorf("follower lists VMs %q", names)
	}
	fh, _ := follower.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	lh, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	for i := range lh.Hosts {
		f, l := fh.Hosts[i], lh.Hosts[i]
		if f.Name != l.Name || f.NumVms != l.NumVms || f.MemoryUsedBytes != l.MemoryUsedBytes {
			t.Errorf("host %d: follower %s %d VMs %d bytes, writer %s %d %d", i, f.Name, f.NumVms, f.MemoryUsedBytes, l.Name, l.NumVms, l.MemoryUsedBytes)
		}
	}
	same := func(what string, l, f proto.Message, err error) {
		if err != nil || !proto.Equal(l, f) {
			t.Errorf("%s: follower %v (%v), writer %v", what, f, err, l)
		}
	}
	ln, _ := c.net.ListNetworks(bg, &acliv1.ListNetworksRequest{})
	fn, err := follower.net.ListNetworks(bg, &acliv1.ListNetworksRequest{})
	same("net.list", ln, fn, err)
	lg, _ := c.vm.ListVmGroups(bg, &acliv1.ListVmGroupsRequest{})
	fg, err := follower.vm.ListVmGroups(bg, &acliv1.ListVmGroupsRequest{})
	same("vm_group.list", lg, fg, err)
	lvg, _ := vg.ListVolumeGroups(bg, &acliv1.ListVolumeGroupsRequest{})
	fvg, err := acliv1.NewVolumeGroupServiceClient(fconn).ListVolumeGroups(bg, &acliv1.ListVolumeGroupsRequest{})
	same("vg.list", lvg, fvg, err)
	if len(fn.GetNetworks()) != 1 || len(fg.GetGroups()) != 1 || len(fvg.GetVolumeGroups()) != 1 {
		t.Errorf("follower has %d networks, %d groups, %d VGs; want 1 each", len(fn.GetNetworks()), len(fg.GetGroups()), len(fvg.GetVolumeGroups()))
	}
}

func vmNames(l *acliv1.ListVmsResponse) string {
	var out []string
	for _, v := range l.Vms {
		out = append(out, v.Name)
	}
	return strings.Join(out, " ")
}

// BenchmarkFollow1000Writes is a read-only manager applying the changes of
// 1,000 writes (VM creates, one per transaction), one write at a time: what
// a follower's read view does to reach the revision a read needs.
func BenchmarkFollow1000Writes(b *testing.B) {
	h, rec := recordingLeader(b)
	rec.start()
	createMany(b, acliv1.NewVmServiceClient(h.Conn), 1000, 8, "vm")
	writes := rec.recorded()
	empty, err := bolt.Open(b.TempDir(), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { empty.Close() })
	// The follower starts from the cluster with its hosts, before the VMs.
	hosts, _ := rec.Store.List(context.Background(), "/")
	for _, kv := range hosts {
		if kv.Key == "/cluster" || strings.HasPrefix(kv.Key, "/hosts/") {
			if _, err := empty.Txn(context.Background(), nil, []store.Op{store.PutOp(kv.Key, kv.Value)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ro := readOnly(b, empty)
		b.StartTimer()
		for _, evs := range writes {
			if err := ro.Follow(evs); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(writes)), "µs/write")
}

// BenchmarkReadOnlyLoad1000Vms is building a read-only manager over a
// store of 1,000 VMs: what a follower's read view cost per new revision
// before it followed changes.
func BenchmarkReadOnlyLoad1000Vms(b *testing.B) {
	h, rec := recordingLeader(b)
	createMany(b, acliv1.NewVmServiceClient(h.Conn), 1000, 8, "vm")
	b.ResetTimer()
	for range b.N {
		ro := readOnly(b, rec.Store)
		b.StopTimer()
		ro.Close()
		b.StartTimer()
	}
}
