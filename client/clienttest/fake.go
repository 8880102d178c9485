// Package clienttest is an in-memory clusterd for CLI tests: a small,
// deterministic cluster model behind the real generated gRPC interfaces,
// served over bufconn (or loopback TCP for tests of the built binary).
package clienttest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Epoch is the fake clock's start: every timestamp is Epoch plus a sequence.
var Epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Fake is the cluster model. Its fields may be set before serving.
type Fake struct {
	mu       sync.Mutex
	seq      int
	cluster  *acliv1.Cluster
	hosts    []*acliv1.Host
	vms      map[string]*acliv1.Vm
	nets     map[string]*acliv1.Network
	tasks    map[string]*acliv1.Task
	order    []string // task UUIDs, oldest first
	failNext *acliv1.Task
	hold     bool
	// Calls counts RPCs by method name, so tests prove what was (not) called.
	calls  map[string]int
	inject map[string]error
	// storage holds volume groups and events (fake_vg.go).
	storage fakeStorage
}

// FailRPC makes every call of method (e.g. "ListHosts") fail with err.
func (f *Fake) FailRPC(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inject == nil {
		f.inject = map[string]error{}
	}
	f.inject[method] = err
}

func (f *Fake) injected(full string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inject[full[strings.LastIndexByte(full, '/')+1:]]
}

// New returns a cluster of three healthy hosts and no VMs.
func New() *Fake {
	f := &Fake{vms: map[string]*acliv1.Vm{}, nets: map[string]*acliv1.Network{}, tasks: map[string]*acliv1.Task{}, calls: map[string]int{}}
	f.cluster = &acliv1.Cluster{Name: "sim-cluster", Uuid: "00000000-0000-4000-8000-00000000c1c1", RedundancyFactor: 2,
		IscsiDataServicesIp: "127.20.0.10", Driver: "sim", Version: "test", CreateTime: timestamppb.New(Epoch)}
	for i := 1; i <= 3; i++ {
		f.hosts = append(f.hosts, &acliv1.Host{
			Uuid: fmt.Sprintf("00000000-0000-4000-8000-0000000000a%d", i), Name: fmt.Sprintf("node-%d", i),
			HypervisorIp: fmt.Sprintf("127.20.0.%d", 20+i), CvmIp: fmt.Sprintf("127.20.1.%d", 20+i),
			CpuCores: 32, MemoryBytes: 256 << 30, NodeState: acliv1.NodeState_AcropolisNormal, Schedulable: true,
			Connected: true, NodeType: "HyperConverged", CvmState: acliv1.CvmState_kCvmUp, HypervisorType: "KVM",
			LastHeartbeat: timestamppb.New(Epoch),
		})
	}
	return f
}

func (f *Fake) count(m string) {
	f.mu.Lock()
	f.calls[m]++
	f.mu.Unlock()
}

// Calls returns how often a method was called.
func (f *Fake) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// HoldTasks makes new tasks stop at 50% running until released (timeouts).
func (f *Fake) HoldTasks(hold bool) {
	f.mu.Lock()
	f.hold = hold
	f.mu.Unlock()
}

// FailNextTask makes the next task end kFailed with this code and message.
func (f *Fake) FailNextTask(code codes.Code, msg string) {
	f.mu.Lock()
	f.failNext = &acliv1.Task{ErrorCode: int32(code), Error: msg}
	f.mu.Unlock()
}

// SetHost changes a host in place (tests of maintenance states, etc.).
func (f *Fake) SetHost(i int, fn func(*acliv1.Host)) {
	f.mu.Lock()
	fn(f.hosts[i])
	f.mu.Unlock()
}

func (f *Fake) uuid(kind string) string {
	f.seq++
	return fmt.Sprintf("00000000-0000-4000-8000-%s%08d", kind, f.seq)
}

func (f *Fake) stamp() *timestamppb.Timestamp {
	return timestamppb.New(Epoch.Add(time.Duration(f.seq) * time.Second))
}

// AddVMs adds n running VMs named prefix0001... spread over the hosts,
// without tasks (benchmarks and bulk fixtures).
func (f *Fake) AddVMs(prefix string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 1; i <= n; i++ {
		h := f.hosts[i%len(f.hosts)]
		v := &acliv1.Vm{Uuid: f.uuid("0000"), Name: fmt.Sprintf("%s%04d", prefix, i), NumVcpus: 2, NumCoresPerVcpu: 1,
			MemoryBytes: 4 << 30, PowerState: acliv1.PowerState_kOn, HostUuid: h.Uuid, HostName: h.Name, CreateTime: f.stamp(),
			Disks: []*acliv1.Disk{{Index: 0, Uuid: f.uuid("0d00"), Bus: "scsi", SizeBytes: 20 << 30, Container: "default-container"}},
			Nics:  []*acliv1.Nic{{Mac: fmt.Sprintf("50:6b:8d:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff), NetworkName: "vlan0", Model: "virtio"}},
		}
		f.vms[v.Uuid] = v
		h.NumVms++
	}
}

// Serve serves the fake over bufconn and returns a client; both stop with t.
func (f *Fake) Serve(t testing.TB) *client.Client {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := f.server()
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(client.MaxRecvMsgSize)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); srv.Stop() })
	return client.New(conn)
}

// ServeTCP serves the fake on a free loopback port and returns host:port.
func (f *Fake) ServeTCP(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := f.server()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func (f *Fake) server() *grpc.Server {
	srv := grpc.NewServer(grpc.MaxSendMsgSize(client.MaxRecvMsgSize),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := f.injected(info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}))
	acliv1.RegisterClusterServiceServer(srv, clusterSvc{f: f})
	acliv1.RegisterHostServiceServer(srv, hostSvc{f: f})
	acliv1.RegisterVmServiceServer(srv, vmSvc{f: f})
	acliv1.RegisterNetworkServiceServer(srv, netSvc{f: f})
	acliv1.RegisterTaskServiceServer(srv, taskSvc{f: f})
	acliv1.RegisterVolumeGroupServiceServer(srv, vgSvc{f: f})
	acliv1.RegisterEventServiceServer(srv, eventSvc{f: f})
	return srv
}

// ---- lookups (callers hold f.mu) ----

func (f *Fake) host(ref string) (*acliv1.Host, error) {
	for _, h := range f.hosts {
		if h.Uuid == ref || h.Name == ref || h.HypervisorIp == ref {
			return h, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "host %q not found", ref)
}

func (f *Fake) vm(ref string) (*acliv1.Vm, error) {
	if v, ok := f.vms[ref]; ok {
		return v, nil
	}
	var found []*acliv1.Vm
	for _, v := range f.vms {
		if v.Name == ref {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 0:
		return nil, status.Errorf(codes.NotFound, "VM %q not found", ref)
	case 1:
		return found[0], nil
	}
	return nil, status.Errorf(codes.FailedPrecondition, "VM name %q is ambiguous (%d VMs); use the UUID", ref, len(found))
}

func (f *Fake) network(ref string) (*acliv1.Network, error) {
	if n, ok := f.nets[ref]; ok {
		return n, nil
	}
	for _, n := range f.nets {
		if n.Name == ref {
			return n, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "network %q not found", ref)
}

// newTask records a queued task for op on the entity.
func (f *Fake) newTask(op acliv1.TaskOperation, kind acliv1.EntityKind, uuid, name string) *acliv1.Task {
	t := &acliv1.Task{Uuid: f.uuid("7a5c"), Operation: op, Principal: "anonymous", Status: acliv1.TaskStatus_kQueued, CreateTime: f.stamp(),
		Entities: []*acliv1.EntityRef{{Kind: kind, Uuid: uuid, Name: name}}, SequenceId: int64(len(f.order) + 1)}
	if f.failNext != nil {
		t.Error, t.ErrorCode = f.failNext.Error, f.failNext.ErrorCode
		f.failNext = nil
	}
	f.tasks[t.Uuid] = t
	f.order = append(f.order, t.Uuid)
	return proto.Clone(t).(*acliv1.Task)
}

// states are the stages a task goes through after the queued one.
func (f *Fake) states(t *acliv1.Task) []*acliv1.Task {
	run := proto.Clone(t).(*acliv1.Task)
	run.Status, run.Percent, run.StartTime = acliv1.TaskStatus_kRunning, 50, t.CreateTime
	run.ProgressMessage = "working on " + t.Entities[0].GetName()
	end := proto.Clone(run).(*acliv1.Task)
	end.Percent, end.ProgressMessage, end.CompleteTime = 100, "", t.CreateTime
	if t.ErrorCode != 0 {
		end.Status = acliv1.TaskStatus_kFailed
	} else {
		end.Status = acliv1.TaskStatus_kSucceeded
	}
	return []*acliv1.Task{run, end}
}

func preconditionErr(msg, subject, desc string) error {
	st := status.New(codes.FailedPrecondition, msg)
	st, _ = st.WithDetails(&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{Type: "STATE", Subject: subject, Description: desc}}})
	return st.Err()
}

func badRequest(msg, field, desc string) error {
	st := status.New(codes.InvalidArgument, msg)
	st, _ = st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}})
	return st.Err()
}

// ---- services ----

type clusterSvc struct {
	acliv1.UnimplementedClusterServiceServer
	f *Fake
}

func (s clusterSvc) GetCluster(context.Context, *acliv1.GetClusterRequest) (*acliv1.Cluster, error) {
	s.f.count("GetCluster")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	c := proto.Clone(s.f.cluster).(*acliv1.Cluster)
	c.NumHosts, c.NumVms = int32(len(s.f.hosts)), int32(len(s.f.vms))
	return c, nil
}

// GetClusterStatus answers as three managers on three etcd members, one
// member down, would.
func (s clusterSvc) GetClusterStatus(context.Context, *acliv1.GetClusterStatusRequest) (*acliv1.ClusterStatus, error) {
	s.f.count("GetClusterStatus")
	return &acliv1.ClusterStatus{
		Store: "etcd", StoreLocation: "http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379 /acli", Leader: "10.0.0.11:2030",
		Managers: []*acliv1.ManagerStatus{{Address: "10.0.0.11:2030", Leader: true}, {Address: "10.0.0.12:2030"}, {Address: "10.0.0.13:2030"}},
		StoreMembers: []*acliv1.StoreMember{
			{Name: "m1", Endpoint: "http://10.0.0.1:2379", Healthy: true, Leader: true, Version: "3.4.23", DbSizeBytes: 20480},
			{Name: "m2", Endpoint: "http://10.0.0.2:2379", Healthy: true, Version: "3.4.23", DbSizeBytes: 20480},
			{Name: "m3", Endpoint: "http://10.0.0.3:2379", Error: "connection refused"},
		},
	}, nil
}

type hostSvc struct {
	acliv1.UnimplementedHostServiceServer
	f *Fake
}

func (s hostSvc) ListHosts(context.Context, *acliv1.ListHostsRequest) (*acliv1.ListHostsResponse, error) {
	s.f.count("ListHosts")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	out := &acliv1.ListHostsResponse{}
	for _, h := range s.f.hosts {
		out.Hosts = append(out.Hosts, proto.Clone(h).(*acliv1.Host))
	}
	return out, nil
}

func (s hostSvc) GetHost(_ context.Context, r *acliv1.GetHostRequest) (*acliv1.Host, error) {
	s.f.count("GetHost")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	h, err := s.f.host(r.GetHost())
	if err != nil {
		return nil, err
	}
	return proto.Clone(h).(*acliv1.Host), nil
}

type vmSvc struct {
	acliv1.UnimplementedVmServiceServer
	f *Fake
}

func (s vmSvc) ListVms(_ context.Context, r *acliv1.ListVmsRequest) (*acliv1.ListVmsResponse, error) {
	s.f.count("ListVms")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	hostUUID := ""
	if r.GetHost() != "" {
		h, err := s.f.host(r.GetHost())
		if err != nil {
			return nil, err
		}
		hostUUID = h.Uuid
	}
	out := &acliv1.ListVmsResponse{}
	for _, v := range s.f.vms {
		if hostUUID != "" && v.HostUuid != hostUUID {
			continue
		}
		if r.GetPowerState() != 0 && v.PowerState != r.GetPowerState() {
			continue
		}
		out.Vms = append(out.Vms, v)
	}
	sort.Slice(out.Vms, func(i, j int) bool {
		a, b := out.Vms[i], out.Vms[j]
		return a.Name < b.Name || a.Name == b.Name && a.Uuid < b.Uuid
	})
	// Marshalled under the lock: the messages are shared.
	b, err := proto.Marshal(out)
	if err != nil {
		return nil, err
	}
	cp := &acliv1.ListVmsResponse{}
	return cp, proto.Unmarshal(b, cp)
}

func (s vmSvc) GetVm(_ context.Context, r *acliv1.GetVmRequest) (*acliv1.Vm, error) {
	s.f.count("GetVm")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	v, err := s.f.vm(r.GetVm())
	if err != nil {
		return nil, err
	}
	return proto.Clone(v).(*acliv1.Vm), nil
}

func (s vmSvc) CreateVm(_ context.Context, r *acliv1.CreateVmRequest) (*acliv1.Task, error) {
	s.f.count("CreateVm")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if r.GetMemoryBytes() <= 0 {
		return nil, badRequest("memory is required", "memory_bytes", "must be greater than 0")
	}
	v := &acliv1.Vm{Uuid: r.GetUuid(), Name: r.GetName(), NumVcpus: max(1, r.GetNumVcpus()), NumCoresPerVcpu: max(1, r.GetNumCoresPerVcpu()),
		MemoryBytes: r.GetMemoryBytes(), PowerState: acliv1.PowerState_kOff, HaPriority: r.GetHaPriority(), AgentVm: r.GetAgentVm(),
		Description: r.GetDescription(), Passthrough: r.GetPassthrough(),
		UefiBoot: r.GetUefiBoot(), NumVnumaNodes: r.GetNumVnumaNodes(), NumThreadsPerCore: max(1, r.GetNumThreadsPerCore()),
		HardwareVirtualization: r.GetHardwareVirtualization(), MemoryOvercommit: r.GetMemoryOvercommit(),
		VcpuHardPin: r.GetVcpuHardPin(), CpuPassthrough: r.GetCpuPassthrough(), VirtualTpm: r.GetVirtualTpm()}
	if v.Uuid == "" {
		v.Uuid = s.f.uuid("0000")
	} else if _, dup := s.f.vms[v.Uuid]; dup {
		return nil, status.Errorf(codes.AlreadyExists, "VM UUID %s is in use", v.Uuid)
	}
	v.CreateTime = s.f.stamp()
	s.f.vms[v.Uuid] = v
	return s.f.newTask(acliv1.TaskOperation_kVmCreate, acliv1.EntityKind_kVm, v.Uuid, v.Name), nil
}

func (s vmSvc) UpdateVm(_ context.Context, r *acliv1.UpdateVmRequest) (*acliv1.Task, error) {
	s.f.count("UpdateVm")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	v, err := s.f.vm(r.GetVm())
	if err != nil {
		return nil, err
	}
	if r.Name != nil {
		v.Name = r.GetName()
	}
	if r.NumVcpus != nil {
		v.NumVcpus = r.GetNumVcpus()
	}
	if r.MemoryBytes != nil {
		v.MemoryBytes = r.GetMemoryBytes()
	}
	if r.HaPriority != nil {
		v.HaPriority = r.GetHaPriority()
	}
	if r.Description != nil {
		v.Description = r.GetDescription()
	}
	return s.f.newTask(acliv1.TaskOperation_kVmUpdate, acliv1.EntityKind_kVm, v.Uuid, v.Name), nil
}

func (s vmSvc) DeleteVm(_ context.Context, r *acliv1.DeleteVmRequest) (*acliv1.Task, error) {
	s.f.count("DeleteVm")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	v, err := s.f.vm(r.GetVm())
	if err != nil {
		return nil, err
	}
	if v.PowerState != acliv1.PowerState_kOff {
		return nil, preconditionErr(fmt.Sprintf("VM %s is %s", v.Name, v.PowerState), "vm/"+v.Name, "power the VM off first (vm.off "+v.Name+")")
	}
	delete(s.f.vms, v.Uuid)
	return s.f.newTask(acliv1.TaskOperation_kVmDelete, acliv1.EntityKind_kVm, v.Uuid, v.Name), nil
}

var powerOps = map[acliv1.PowerTransition]acliv1.TaskOperation{
	acliv1.PowerTransition_kPowerOn: acliv1.TaskOperation_kVmPowerOn, acliv1.PowerTransition_kPowerOff: acliv1.TaskOperation_kVmPowerOff,
	acliv1.PowerTransition_kShutdown: acliv1.TaskOperation_kVmShutdown, acliv1.PowerTransition_kReboot: acliv1.TaskOperation_kVmReboot,
	acliv1.PowerTransition_kReset: acliv1.TaskOperation_kVmReset,
}

func (s vmSvc) SetPowerState(_ context.Context, r *acliv1.SetPowerStateRequest) (*acliv1.Task, error) {
	s.f.count("SetPowerState")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	v, err := s.f.vm(r.GetVm())
	if err != nil {
		return nil, err
	}
	op, ok := powerOps[r.GetTransition()]
	if !ok {
		return nil, badRequest("bad transition", "transition", "must be set")
	}
	switch r.GetTransition() {
	case acliv1.PowerTransition_kPowerOn:
		h := s.f.hosts[0]
		if r.GetHost() != "" {
			if h, err = s.f.host(r.GetHost()); err != nil {
				return nil, err
			}
		}
		v.PowerState, v.HostUuid, v.HostName = acliv1.PowerState_kOn, h.Uuid, h.Name
	case acliv1.PowerTransition_kPowerOff, acliv1.PowerTransition_kShutdown:
		v.PowerState = acliv1.PowerState_kOff
	}
	return s.f.newTask(op, acliv1.EntityKind_kVm, v.Uuid, v.Name), nil
}

func (s vmSvc) CreateDisk(_ context.Context, r *acliv1.CreateDiskRequest) (*acliv1.Task, error) {
	s.f.count("CreateDisk")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	v, err := s.f.vm(r.GetVm())
	if err != nil {
		return nil, err
	}
	bus := r.GetBus()
	if bus == "" {
		bus = "scsi"
	}
	idx := int32(0)
	for _, d := range v.Disks {
		if d.Bus == bus && d.Index >= idx {
			idx = d.Index + 1
		}
	}
	if r.Index != nil {
		idx = r.GetIndex()
	}
	container := r.GetContainer()
	if container == "" {
		container = "default-container"
	}
	v.Disks = append(v.Disks, &acliv1.Disk{Index: idx, Uuid: s.f.uuid("0d00"), Bus: bus, SizeBytes: r.GetSizeBytes(), Container: container, Cdrom: r.GetCdrom()})
	return s.f.newTask(acliv1.TaskOperation_kVmDiskCreate, acliv1.EntityKind_kVm, v.Uuid, v.Name), nil
}

func (s vmSvc) DeleteDisk(_ context.Context, r *acliv1.DeleteDiskRequest) (*acliv1.Task, error) {
	s.f.count("DeleteDisk")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	v, err := s.f.vm(r.GetVm())
	if err != nil {
		return nil, err
	}
	for i, d := range v.Disks {
		if d.Bus == r.GetBus() && d.Index == r.GetIndex() {
			v.Disks = append(v.Disks[:i], v.Disks[i+1:]...)
			return s.f.newTask(acliv1.TaskOperation_kVmDiskDelete, acliv1.EntityKind_kVm, v.Uuid, v.Name), nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "VM %s has no disk %s.%d", v.Name, r.GetBus(), r.GetIndex())
}

func (s vmSvc) CreateNic(_ context.Context, r *acliv1.CreateNicRequest) (*acliv1.Task, error) {
	s.f.count("CreateNic")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	v, err := s.f.vm(r.GetVm())
	if err != nil {
		return nil, err
	}
	n, err := s.f.network(r.GetNetwork())
	if err != nil {
		return nil, err
	}
	mac := r.GetMac()
	if mac == "" {
		s.f.seq++
		mac = fmt.Sprintf("50:6b:8d:00:%02x:%02x", s.f.seq>>8&0xff, s.f.seq&0xff)
	}
	mode := r.GetVlanMode()
	if mode == 0 {
		mode = acliv1.NetworkMode_kAccess
	}
	v.Nics = append(v.Nics, &acliv1.Nic{Mac: mac, NetworkUuid: n.Uuid, NetworkName: n.Name, Ip: r.GetIp(), Model: r.GetModel(),
		VlanMode: mode, TrunkedNetworks: r.GetTrunkedNetworks(), Disconnected: r.Connected != nil && !r.GetConnected()})
	n.NumNics++
	return s.f.newTask(acliv1.TaskOperation_kVmNicCreate, acliv1.EntityKind_kVm, v.Uuid, v.Name), nil
}

func (s vmSvc) DeleteNic(_ context.Context, r *acliv1.DeleteNicRequest) (*acliv1.Task, error) {
	s.f.count("DeleteNic")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	v, err := s.f.vm(r.GetVm())
	if err != nil {
		return nil, err
	}
	for i, n := range v.Nics {
		if strings.EqualFold(n.Mac, r.GetMac()) {
			v.Nics = append(v.Nics[:i], v.Nics[i+1:]...)
			if net, err := s.f.network(n.NetworkUuid); err == nil {
				net.NumNics--
			}
			return s.f.newTask(acliv1.TaskOperation_kVmNicDelete, acliv1.EntityKind_kVm, v.Uuid, v.Name), nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "VM %s has no NIC %s", v.Name, r.GetMac())
}

type netSvc struct {
	acliv1.UnimplementedNetworkServiceServer
	f *Fake
}

func (s netSvc) ListNetworks(context.Context, *acliv1.ListNetworksRequest) (*acliv1.ListNetworksResponse, error) {
	s.f.count("ListNetworks")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	out := &acliv1.ListNetworksResponse{}
	for _, n := range s.f.nets {
		out.Networks = append(out.Networks, proto.Clone(n).(*acliv1.Network))
	}
	sort.Slice(out.Networks, func(i, j int) bool { return out.Networks[i].Name < out.Networks[j].Name })
	return out, nil
}

func (s netSvc) GetNetwork(_ context.Context, r *acliv1.GetNetworkRequest) (*acliv1.Network, error) {
	s.f.count("GetNetwork")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	n, err := s.f.network(r.GetNetwork())
	if err != nil {
		return nil, err
	}
	return proto.Clone(n).(*acliv1.Network), nil
}

func (s netSvc) CreateNetwork(_ context.Context, r *acliv1.CreateNetworkRequest) (*acliv1.Task, error) {
	s.f.count("CreateNetwork")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if _, err := s.f.network(r.GetName()); err == nil {
		return nil, status.Errorf(codes.AlreadyExists, "network %q already exists", r.GetName())
	}
	mode := r.GetMode()
	if mode == 0 {
		mode = acliv1.NetworkMode_kAccess
	}
	vs := r.GetVswitchName()
	if vs == "" {
		vs = "vs0"
	}
	n := &acliv1.Network{Uuid: s.f.uuid("0e70"), Name: r.GetName(), VlanId: r.GetVlanId(), Mode: mode, VswitchName: vs}
	if p, err := netip.ParsePrefix(r.GetIpConfig()); err == nil {
		n.IpConfig = p.Masked().String()
		if p.Addr() != p.Masked().Addr() {
			n.DefaultGateway = p.Addr().String()
		}
	}
	s.f.nets[n.Uuid] = n
	return s.f.newTask(acliv1.TaskOperation_kNetworkCreate, acliv1.EntityKind_kNetwork, n.Uuid, n.Name), nil
}

func (s netSvc) DeleteNetwork(_ context.Context, r *acliv1.DeleteNetworkRequest) (*acliv1.Task, error) {
	s.f.count("DeleteNetwork")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	n, err := s.f.network(r.GetNetwork())
	if err != nil {
		return nil, err
	}
	if n.NumNics > 0 {
		return nil, preconditionErr(fmt.Sprintf("network %s has %d NICs", n.Name, n.NumNics), "network/"+n.Name, "delete its NICs first")
	}
	delete(s.f.nets, n.Uuid)
	return s.f.newTask(acliv1.TaskOperation_kNetworkDelete, acliv1.EntityKind_kNetwork, n.Uuid, n.Name), nil
}

type taskSvc struct {
	acliv1.UnimplementedTaskServiceServer
	f *Fake
}

func (s taskSvc) ListTasks(_ context.Context, r *acliv1.ListTasksRequest) (*acliv1.ListTasksResponse, error) {
	s.f.count("ListTasks")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	limit := int(r.GetLimit())
	if limit <= 0 {
		limit = 100
	}
	out := &acliv1.ListTasksResponse{}
	for i := len(s.f.order) - 1; i >= 0 && len(out.Tasks) < limit; i-- {
		t := s.f.tasks[s.f.order[i]]
		if !r.GetIncludeCompleted() && (t.Status == acliv1.TaskStatus_kSucceeded || t.Status == acliv1.TaskStatus_kFailed) {
			continue
		}
		if ops := r.GetOperationTypes(); len(ops) > 0 && !slices.Contains(ops, t.Operation) {
			continue
		}
		out.Tasks = append(out.Tasks, proto.Clone(t).(*acliv1.Task))
	}
	return out, nil
}

func (s taskSvc) GetTask(_ context.Context, r *acliv1.GetTaskRequest) (*acliv1.Task, error) {
	s.f.count("GetTask")
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	t, ok := s.f.tasks[r.GetUuid()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "task %q not found", r.GetUuid())
	}
	return proto.Clone(t).(*acliv1.Task), nil
}

// WatchTask sends the current state, then running at 50%, then the end;
// with HoldTasks it stops at running until the client gives up.
func (s taskSvc) WatchTask(r *acliv1.GetTaskRequest, stream acliv1.TaskService_WatchTaskServer) error {
	s.f.count("WatchTask")
	s.f.mu.Lock()
	t, ok := s.f.tasks[r.GetUuid()]
	if !ok {
		s.f.mu.Unlock()
		return status.Errorf(codes.NotFound, "task %q not found", r.GetUuid())
	}
	cur := proto.Clone(t).(*acliv1.Task)
	hold := s.f.hold
	var next []*acliv1.Task
	if cur.Status == acliv1.TaskStatus_kQueued || cur.Status == acliv1.TaskStatus_kRunning {
		next = s.f.states(cur)
		if hold {
			next = next[:1]
		}
		s.f.tasks[cur.Uuid] = proto.Clone(next[len(next)-1]).(*acliv1.Task)
	}
	s.f.mu.Unlock()
	if err := stream.Send(cur); err != nil {
		return err
	}
	for _, n := range next {
		if err := stream.Send(n); err != nil {
			return err
		}
	}
	if hold {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return nil
}
