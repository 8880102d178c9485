package manager_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

const gib = int64(1) << 30

type clients struct {
	vm   acliv1.VmServiceClient
	host acliv1.HostServiceClient
	net  acliv1.NetworkServiceClient
	task acliv1.TaskServiceClient
	ev   acliv1.EventServiceClient
	cl   acliv1.ClusterServiceClient
	sim  acliv1.SimServiceClient
}

func newClients(conn *grpc.ClientConn) clients {
	return clients{
		vm: acliv1.NewVmServiceClient(conn), host: acliv1.NewHostServiceClient(conn),
		net: acliv1.NewNetworkServiceClient(conn), task: acliv1.NewTaskServiceClient(conn),
		ev: acliv1.NewEventServiceClient(conn), cl: acliv1.NewClusterServiceClient(conn),
		sim: acliv1.NewSimServiceClient(conn),
	}
}

func start(t *testing.T, opts managertest.Options) clients {
	conn, _ := managertest.Start(t, opts)
	return newClients(conn)
}

var bg = context.Background()

// wait watches a task to its end and returns the final state.
func wait(t testing.TB, c clients, task *acliv1.Task, err error) *acliv1.Task {
	t.Helper()
	if err != nil {
		t.Fatalf("starting task: %v", err)
	}
	stream, err := c.task.WatchTask(bg, &acliv1.GetTaskRequest{Uuid: task.Uuid})
	if err != nil {
		t.Fatal(err)
	}
	var last *acliv1.Task
	for {
		got, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		last = got
	}
	return last
}

// succeed returns a function that waits for a task and requires success:
// succeed(t, c)(c.vm.CreateVm(...)).
func succeed(t testing.TB, c clients) func(*acliv1.Task, error) *acliv1.Task {
	return func(task *acliv1.Task, err error) *acliv1.Task {
		t.Helper()
		final := wait(t, c, task, err)
		if final.Status != acliv1.TaskStatus_kSucceeded {
			t.Fatalf("task %s %s: %s (%s)", final.Operation, final.Status, final.Error, codes.Code(final.ErrorCode))
		}
		return final
	}
}

func createVm(t testing.TB, c clients, name string, mem int64) *acliv1.Vm {
	t.Helper()
	task := succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: name, MemoryBytes: mem, NumVcpus: 2}))
	vm, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: task.Entities[0].Uuid})
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func power(c clients, vm string, tr acliv1.PowerTransition) (*acliv1.Task, error) {
	return c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: vm, Transition: tr})
}

// wantCode asserts a gRPC code and a message fragment, returning the status.
func wantCode(t *testing.T, err error, code codes.Code, fragment string) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), fragment) {
		t.Fatalf("got %v %q; want %v containing %q", st.Code(), st.Message(), code, fragment)
	}
	if strings.Contains(st.Message(), "\n") {
		t.Fatalf("error message is not one line: %q", st.Message())
	}
	return st
}

func detail[T proto.Message](t *testing.T, st *status.Status) T {
	t.Helper()
	for _, d := range st.Details() {
		if v, ok := d.(T); ok {
			return v
		}
	}
	var zero T
	t.Fatalf("status %q has no %T detail", st.Message(), zero)
	return zero
}

func TestClusterAndHosts(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	cl, err := c.cl.GetCluster(bg, &acliv1.GetClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if cl.RedundancyFactor != 2 || cl.NumHosts != 3 || cl.IscsiDataServicesIp != "127.20.0.30" || cl.Driver != "sim" {
		t.Fatalf("cluster %v", cl)
	}
	hosts, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	for i, h := range hosts.Hosts {
		wantIP := []string{"127.20.0.21", "127.20.0.22", "127.20.0.23"}[i]
		wantCvm := []string{"127.20.0.31", "127.20.0.32", "127.20.0.33"}[i]
		if h.HypervisorIp != wantIP || h.CvmIp != wantCvm || h.MemoryBytes != 256*gib || h.CpuCores != 32 ||
			!h.Schedulable || h.NodeState != acliv1.NodeState_AcropolisNormal || h.CvmState != acliv1.CvmState_kCvmUp {
			t.Fatalf("host %d: %v", i, h)
		}
	}
	// Lookup by name, UUID and IP.
	for _, ref := range []string{"h2", hosts.Hosts[1].Uuid, "127.20.0.22"} {
		h, err := c.host.GetHost(bg, &acliv1.GetHostRequest{Host: ref})
		if err != nil || h.Name != "h2" {
			t.Fatalf("GetHost(%s) = %v, %v", ref, h, err)
		}
	}
	st := wantCode(t, errOf(c.host.GetHost(bg, &acliv1.GetHostRequest{Host: "h9"})), codes.NotFound, `host "h9" not found`)
	if ri := detail[*errdetails.ResourceInfo](t, st); ri.ResourceType != "host" || ri.ResourceName != "h9" {
		t.Fatalf("ResourceInfo %v", ri)
	}
}

func errOf[T any](_ T, err error) error { return err }

func TestVmLifecycle(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	vm := createVm(t, c, "web01", 4*gib)
	if vm.PowerState != acliv1.PowerState_kOff || vm.HostUuid != "" || vm.NumVcpus != 2 || vm.NumCoresPerVcpu != 1 {
		t.Fatalf("new vm %v", vm)
	}
	byName, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "web01"})
	if err != nil || byName.Uuid != vm.Uuid {
		t.Fatalf("GetVm by name: %v %v", byName, err)
	}

	on := succeed(t, c)(power(c, "web01", acliv1.PowerTransition_kPowerOn))
	if on.Percent != 100 || on.CompleteTime == nil || len(on.Entities) != 2 {
		t.Fatalf("power-on task %v", on)
	}
	vm, _ = c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: vm.Uuid})
	if vm.PowerState != acliv1.PowerState_kOn || vm.HostUuid == "" || vm.HostName != on.Entities[1].Name {
		t.Fatalf("after power on: %v", vm)
	}
	h, _ := c.host.GetHost(bg, &acliv1.GetHostRequest{Host: vm.HostUuid})
	if h.MemoryUsedBytes != 4*gib || h.NumVms != 1 || h.VcpusUsed != 2 {
		t.Fatalf("host usage %d bytes, %d VMs, %d vCPUs", h.MemoryUsedBytes, h.NumVms, h.VcpusUsed)
	}
	// Powering on again changes nothing and succeeds.
	again := succeed(t, c)(power(c, "web01", acliv1.PowerTransition_kPowerOn))
	if !strings.Contains(strings.Join(again.Messages, ";"), "already on") {
		t.Fatalf("repeat power-on messages %v", again.Messages)
	}
	succeed(t, c)(power(c, "web01", acliv1.PowerTransition_kReboot))
	succeed(t, c)(power(c, "web01", acliv1.PowerTransition_kReset))

	wantCode(t, errOf(c.vm.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "web01"})), codes.FailedPrecondition, "vm web01 is on; power it off first")

	succeed(t, c)(power(c, "web01", acliv1.PowerTransition_kShutdown))
	vm, _ = c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: vm.Uuid})
	if vm.PowerState != acliv1.PowerState_kOff || vm.HostUuid != "" {
		t.Fatalf("after shutdown: %v", vm)
	}
	if h, _ := c.host.GetHost(bg, &acliv1.GetHostRequest{Host: h.Uuid}); h.MemoryUsedBytes != 0 || h.NumVms != 0 {
		t.Fatalf("host usage after shutdown: %v", h)
	}
	wantCode(t, errOf(power(c, "web01", acliv1.PowerTransition_kReboot)), codes.FailedPrecondition, "vm web01 is off; power it on first")

	succeed(t, c)(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "web01", Name: proto.String("web02"), MemoryBytes: proto.Int64(8 * gib)}))
	vm, _ = c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "web02"})
	if vm.MemoryBytes != 8*gib {
		t.Fatalf("after update: %v", vm)
	}
	succeed(t, c)(c.vm.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "web02"}))
	wantCode(t, errOf(c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: vm.Uuid})), codes.NotFound, "not found")
	list, _ := c.vm.ListVms(bg, &acliv1.ListVmsRequest{})
	if len(list.Vms) != 0 {
		t.Fatalf("vms left: %v", list.Vms)
	}
}

func TestPlacementSpreadsAndListFilters(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	for _, n := range []string{"a", "b", "c", "d"} {
		createVm(t, c, n, 16*gib)
		succeed(t, c)(power(c, n, acliv1.PowerTransition_kPowerOn))
	}
	hosts, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	counts := []int32{}
	for _, h := range hosts.Hosts {
		counts = append(counts, h.NumVms)
	}
	// Most free memory, then fewest VMs, then IP: h1, h2, h3, then h1 again.
	if counts[0] != 2 || counts[1] != 1 || counts[2] != 1 {
		t.Fatalf("VMs per host %v, want [2 1 1]", counts)
	}
	onH1, _ := c.vm.ListVms(bg, &acliv1.ListVmsRequest{Host: "127.20.0.21"})
	if len(onH1.Vms) != 2 || onH1.Vms[0].Name != "a" || onH1.Vms[1].Name != "d" {
		t.Fatalf("ListVms(host=h1) = %v", onH1.Vms)
	}
	createVm(t, c, "off", gib)
	offs, _ := c.vm.ListVms(bg, &acliv1.ListVmsRequest{PowerState: acliv1.PowerState_kOff})
	if len(offs.Vms) != 1 || offs.Vms[0].Name != "off" {
		t.Fatalf("ListVms(off) = %v", offs.Vms)
	}
	// A named host is honoured.
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "off", Transition: acliv1.PowerTransition_kPowerOn, Host: "h3"}))
	if v, _ := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "off"}); v.HostName != "h3" {
		t.Fatalf("vm placed on %s, want h3", v.HostName)
	}
}

func TestBadInput(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	st := wantCode(t, errOf(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "x"})), codes.InvalidArgument, "memory 0 must be greater than 0")
	if br := detail[*errdetails.BadRequest](t, st); br.FieldViolations[0].Field != "memory_bytes" {
		t.Fatalf("BadRequest %v", br)
	}
	wantCode(t, errOf(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "x", MemoryBytes: -5})), codes.InvalidArgument, "memory -5 must be greater than 0")
	st = wantCode(t, errOf(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{MemoryBytes: gib, NumVcpus: -1})), codes.InvalidArgument, "vm name is required")
	if br := detail[*errdetails.BadRequest](t, st); len(br.FieldViolations) != 2 {
		t.Fatalf("want every bad field reported, got %v", br)
	}
	wantCode(t, errOf(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "x", MemoryBytes: gib, Uuid: "nope"})), codes.InvalidArgument, `uuid "nope" is not a UUID`)

	const id = "0b7e6a8c-1111-4b7a-9c1e-2d3f4a5b6c7d"
	succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "db01", MemoryBytes: gib, Uuid: strings.ToUpper(id)}))
	if v, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: id}); err != nil || v.Name != "db01" {
		t.Fatalf("explicit UUID not kept: %v %v", v, err)
	}
	wantCode(t, errOf(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "db02", MemoryBytes: gib, Uuid: id})), codes.AlreadyExists, "vm db01 has this UUID")

	st = wantCode(t, errOf(c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "db0l"})), codes.NotFound, `(did you mean "db01"?)`)
	if ri := detail[*errdetails.ResourceInfo](t, st); ri.ResourceType != "vm" || ri.ResourceName != "db0l" {
		t.Fatalf("ResourceInfo %v", ri)
	}
	wantCode(t, errOf(power(c, "nope", acliv1.PowerTransition_kPowerOn)), codes.NotFound, `vm "nope" not found`)
	wantCode(t, errOf(c.vm.ListVms(bg, &acliv1.ListVmsRequest{Host: "h7"})), codes.NotFound, `host "h7" not found`)
	wantCode(t, errOf(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "db01", Transition: acliv1.PowerTransition_kPowerOn, Host: "hx"})), codes.NotFound, `host "hx" not found`)
	wantCode(t, errOf(power(c, "db01", 0)), codes.InvalidArgument, "use kPowerOn, kPowerOff")

	// Names may repeat; a repeated name is ambiguous and the error lists the UUIDs.
	succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "db01", MemoryBytes: gib}))
	wantCode(t, errOf(c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "db01"})), codes.InvalidArgument, id)
	wantCode(t, errOf(c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: id})), codes.FailedPrecondition, "is off and has no host to move from")
}

func TestFitsNowhereNamesShortfall(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	createVm(t, c, "big", 300*gib)
	st := wantCode(t, errOf(power(c, "big", acliv1.PowerTransition_kPowerOn)), codes.FailedPrecondition, "vm big (300 GiB) fits on no host")
	pf := detail[*errdetails.PreconditionFailure](t, st)
	if len(pf.Violations) != 3 {
		t.Fatalf("want one violation per host, got %v", pf.Violations)
	}
	for _, v := range pf.Violations {
		if v.Type != "MEMORY" || !strings.Contains(v.Description, "needs 300 GiB, 256 GiB free (short by 44 GiB)") {
			t.Fatalf("violation %v", v)
		}
	}
	// Named host: the same rule.
	_, err := c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "big", Transition: acliv1.PowerTransition_kPowerOn, Host: "h2"})
	wantCode(t, err, codes.FailedPrecondition, "cannot power on vm big on host h2: host h2 (127.20.0.22): needs 300 GiB")
}

// TestMemoryNeverOvercommitted powers on VMs concurrently until the cluster
// is full: each host stays within its memory and the rest are refused.
func TestMemoryNeverOvercommitted(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3, Speed: 100})
	const n = 40 // 40 x 20 GiB = 800 GiB > 768 GiB
	for i := 0; i < n; i++ {
		createVm(t, c, "vm", 20*gib)
	}
	list, _ := c.vm.ListVms(bg, &acliv1.ListVmsRequest{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for _, v := range list.Vms {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			task, err := power(c, id, acliv1.PowerTransition_kPowerOn)
			if err != nil {
				if status.Code(err) != codes.FailedPrecondition {
					t.Errorf("power on: %v", err)
				}
				mu.Lock()
				refused++
				mu.Unlock()
				return
			}
			if final := wait(t, c, task, nil); final.Status != acliv1.TaskStatus_kSucceeded {
				t.Errorf("power on failed: %s", final.Error)
			}
			mu.Lock()
			ok++
			mu.Unlock()
		}(v.Uuid)
	}
	wg.Wait()
	if ok != 36 || refused != 4 { // 12 x 20 GiB fit in 256 GiB per host
		t.Fatalf("%d powered on, %d refused; want 36 and 4", ok, refused)
	}
	hosts, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	for _, h := range hosts.Hosts {
		if h.MemoryUsedBytes > h.MemoryBytes {
			t.Fatalf("host %s over-committed: %d > %d", h.Name, h.MemoryUsedBytes, h.MemoryBytes)
		}
	}
}

func TestConflictingOperationRefused(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3, Speed: 2}) // power-on takes 0.5 s
	createVm(t, c, "slow", gib)
	task, err := power(c, "slow", acliv1.PowerTransition_kPowerOn)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "slow"})
	if v.BusyTaskUuid != task.Uuid {
		t.Fatalf("busy_task_uuid %q, want %s", v.BusyTaskUuid, task.Uuid)
	}
	for _, err := range []error{
		errOf(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "slow", NumVcpus: proto.Int32(4)})),
		errOf(c.vm.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "slow"})),
		errOf(power(c, "slow", acliv1.PowerTransition_kPowerOff)),
	} {
		wantCode(t, err, codes.Aborted, "vm slow is busy with task "+task.Uuid+" (kVmPowerOn)")
	}
	running, _ := c.task.ListTasks(bg, &acliv1.ListTasksRequest{})
	if len(running.Tasks) != 1 || running.Tasks[0].Uuid != task.Uuid || running.Tasks[0].Status != acliv1.TaskStatus_kRunning {
		t.Fatalf("running tasks %v", running.Tasks)
	}
	final := succeed(t, c)(task, nil)
	if final.StartTime == nil || !final.CompleteTime.AsTime().After(final.StartTime.AsTime()) {
		t.Fatalf("task times %v", final)
	}
	succeed(t, c)(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "slow", NumVcpus: proto.Int32(4)}))
}

func TestWatchTaskStreamsProgress(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3, Speed: 5})
	createVm(t, c, "w", gib)
	task, err := power(c, "w", acliv1.PowerTransition_kPowerOn)
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := c.task.WatchTask(bg, &acliv1.GetTaskRequest{Uuid: task.Uuid})
	var seen []*acliv1.Task
	for {
		got, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, got)
	}
	if len(seen) < 2 || seen[0].Status != acliv1.TaskStatus_kRunning || seen[len(seen)-1].Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("watch saw %d states, first %v last %v", len(seen), seen[0].Status, seen[len(seen)-1].Status)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Revision <= seen[i-1].Revision {
			t.Fatalf("revisions not increasing: %d then %d", seen[i-1].Revision, seen[i].Revision)
		}
	}
	wantCode(t, errOf(c.task.GetTask(bg, &acliv1.GetTaskRequest{Uuid: "00000000-0000-0000-0000-000000000000"})), codes.NotFound, "not found")
	all, _ := c.task.ListTasks(bg, &acliv1.ListTasksRequest{IncludeCompleted: true, Entity: "w"})
	if len(all.Tasks) != 2 || all.Tasks[0].Operation != acliv1.TaskOperation_kVmPowerOn {
		t.Fatalf("ListTasks(entity=w) = %v", all.Tasks)
	}
	creates, _ := c.task.ListTasks(bg, &acliv1.ListTasksRequest{IncludeCompleted: true, Entity: "w", OperationTypes: []acliv1.TaskOperation{acliv1.TaskOperation_kVmCreate}})
	if len(creates.Tasks) != 1 || creates.Tasks[0].Operation != acliv1.TaskOperation_kVmCreate {
		t.Fatalf("ListTasks(operation_types=kVmCreate) = %v", creates.Tasks)
	}
}

func TestDisksNicsNetworks(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	createVm(t, c, "app", 2*gib)
	succeed(t, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "app", SizeBytes: 20 * gib}))
	succeed(t, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "app", SizeBytes: 10 * gib}))
	succeed(t, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "app", Cdrom: true}))
	v, _ := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "app"})
	var names []string
	for _, d := range v.Disks {
		names = append(names, d.Bus+"."+string(rune('0'+d.Index)))
	}
	if strings.Join(names, ",") != "ide.0,scsi.0,scsi.1" || v.Disks[1].Container != "default-container" || v.Disks[1].Uuid == "" {
		t.Fatalf("disks %v", v.Disks)
	}
	wantCode(t, errOf(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "app", SizeBytes: gib, Bus: "scis"})), codes.InvalidArgument, `(did you mean "scsi"?)`)
	wantCode(t, errOf(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "app"})), codes.InvalidArgument, "disk size 0 must be greater than 0")
	wantCode(t, errOf(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "app", SizeBytes: gib, Index: proto.Int32(1)})), codes.AlreadyExists, "scsi.1")
	succeed(t, c)(c.vm.DeleteDisk(bg, &acliv1.DeleteDiskRequest{Vm: "app", Index: 0}))
	wantCode(t, errOf(c.vm.DeleteDisk(bg, &acliv1.DeleteDiskRequest{Vm: "app", Index: 0})), codes.NotFound, "scsi.0 of vm app")

	wantCode(t, errOf(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "app", Network: "prod"})), codes.NotFound, `network "prod" not found`)
	succeed(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod", VlanId: 100, IpConfig: "10.1.0.7/24"}))
	wantCode(t, errOf(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "prod"})), codes.AlreadyExists, "network prod already exists")
	wantCode(t, errOf(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "x", VlanId: 5000})), codes.InvalidArgument, "vlan 5000 is out of range")
	n, _ := c.net.GetNetwork(bg, &acliv1.GetNetworkRequest{Network: "prod"})
	if n.IpConfig != "10.1.0.0/24" || n.Mode != acliv1.NetworkMode_kAccess || n.VswitchName != "vs0" {
		t.Fatalf("network %v", n)
	}
	succeed(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "app", Network: "prod", Ip: "10.1.0.15"}))
	succeed(t, c)(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "app", Network: n.Uuid, Mac: "50:6B:8D:00:00:01"}))
	wantCode(t, errOf(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "app", Network: "prod", Mac: "50:6b:8d:00:00:01"})), codes.AlreadyExists, "vm app has a NIC with this MAC")
	wantCode(t, errOf(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "app", Network: "prod", Ip: "10.2.0.1"})), codes.InvalidArgument, "outside network prod")
	wantCode(t, errOf(c.vm.CreateNic(bg, &acliv1.CreateNicRequest{Vm: "app", Network: "prod", Mac: "zz"})), codes.InvalidArgument, "is not a MAC address")
	v, _ = c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "app"})
	if len(v.Nics) != 2 || !strings.HasPrefix(v.Nics[0].Mac, "50:6b:8d:") || v.Nics[0].Model != "virtio" || v.Nics[0].Ip != "10.1.0.15" {
		t.Fatalf("nics %v", v.Nics)
	}
	if n, _ := c.net.GetNetwork(bg, &acliv1.GetNetworkRequest{Network: "prod"}); n.NumNics != 2 {
		t.Fatalf("network counts %d NICs, want 2", n.NumNics)
	}
	st := wantCode(t, errOf(c.net.DeleteNetwork(bg, &acliv1.DeleteNetworkRequest{Network: "prod"})), codes.FailedPrecondition, "network prod has 2 NICs")
	if pf := detail[*errdetails.PreconditionFailure](t, st); len(pf.Violations) != 2 {
		t.Fatalf("violations %v", pf.Violations)
	}
	for _, nic := range v.Nics {
		succeed(t, c)(c.vm.DeleteNic(bg, &acliv1.DeleteNicRequest{Vm: "app", Mac: nic.Mac}))
	}
	succeed(t, c)(c.net.DeleteNetwork(bg, &acliv1.DeleteNetworkRequest{Network: "prod"}))
	if l, _ := c.net.ListNetworks(bg, &acliv1.ListNetworksRequest{}); len(l.Networks) != 0 {
		t.Fatalf("networks left %v", l.Networks)
	}
}

func TestHostSchedulabilityAndFaults(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	succeed(t, c)(c.host.UpdateHost(bg, &acliv1.UpdateHostRequest{Host: "h1", Schedulable: proto.Bool(false), Reason: "firmware upgrade"}))
	if _, err := c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h2"}); err != nil {
		t.Fatal(err)
	}
	hosts, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	h1, h2 := hosts.Hosts[0], hosts.Hosts[1]
	if h1.Schedulable || h1.SchedulableReason != "firmware upgrade" {
		t.Fatalf("h1 %v", h1)
	}
	if h2.NodeState != acliv1.NodeState_kNodeDown || h2.Connected || h2.Schedulable || h2.CvmState != acliv1.CvmState_kCvmDown {
		t.Fatalf("h2 %v", h2)
	}
	createVm(t, c, "v", gib)
	succeed(t, c)(power(c, "v", acliv1.PowerTransition_kPowerOn))
	if v, _ := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "v"}); v.HostName != "h3" {
		t.Fatalf("placed on %s, want h3 (h1 unschedulable, h2 down)", v.HostName)
	}
	createVm(t, c, "w", gib)
	_, err := c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "w", Transition: acliv1.PowerTransition_kPowerOn, Host: "h2"})
	wantCode(t, err, codes.FailedPrecondition, "host is down")

	if r, err := c.sim.RecoverHost(bg, &acliv1.SimHostRequest{Host: "h2"}); err != nil || r.Host.NodeState != acliv1.NodeState_AcropolisNormal {
		t.Fatalf("recover: %v %v", r, err)
	}
	if r, _ := c.sim.FailCvm(bg, &acliv1.SimHostRequest{Host: "h3"}); r.Host.CvmState != acliv1.CvmState_kCvmDown || r.Host.NodeState != acliv1.NodeState_AcropolisNormal {
		t.Fatalf("fail cvm: %v", r.Host)
	}
	evs, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "host"})
	var msgs []string
	for _, e := range evs.Events {
		msgs = append(msgs, e.Message)
	}
	joined := strings.Join(msgs, "\n")
	if !strings.Contains(joined, "host h2 (127.20.0.22) is down") || !strings.Contains(joined, "host h2 (127.20.0.22) is up") {
		t.Fatalf("host events:\n%s", joined)
	}
	wantCode(t, errOf(c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "hots"})), codes.InvalidArgument, `(did you mean "host"?)`)
}

func TestWatchEventsReplayAndFilter(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	createVm(t, c, "e0", gib)
	first, _ := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: "vm"})
	createVm(t, c, "e1", gib)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	// Replays e1 (after e0's seq), then streams e2 live.
	stream, err := c.ev.WatchEvents(ctx, &acliv1.WatchEventsRequest{Type: "vm", SinceSeq: first.Events[0].Seq})
	if err != nil {
		t.Fatal(err)
	}
	succeed(t, c)(c.net.CreateNetwork(bg, &acliv1.CreateNetworkRequest{Name: "n"}))
	createVm(t, c, "e2", gib)
	var got []string
	for len(got) < 2 {
		e, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if e.Type != "vm" {
			t.Fatalf("filter let through %v", e)
		}
		got = append(got, e.Message)
	}
	if !strings.HasPrefix(got[0], "vm e1 created") || !strings.HasPrefix(got[1], "vm e2 created") {
		t.Fatalf("events %v", got)
	}
}
