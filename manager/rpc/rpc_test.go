package rpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/store"
)

func TestStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		want codes.Code
	}{
		{status.Error(codes.NotFound, "vm x not found"), codes.NotFound},
		{fmt.Errorf("commit: %w", store.ErrClosed), codes.Unavailable},
		{fmt.Errorf("commit: %w", store.ErrNotLeader), codes.Unavailable},
		{fmt.Errorf("commit: %w", store.ErrUnavailable), codes.Unavailable},
		{&store.ConflictError{}, codes.Aborted},
		{context.Canceled, codes.Canceled},
		{fmt.Errorf("driver: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("disk full"), codes.Internal},
	} {
		if got := status.Code(Status(c.err)); got != c.want {
			t.Errorf("Status(%v) = %s, want %s", c.err, got, c.want)
		}
	}
	if Status(nil) != nil {
		t.Error("Status(nil) is not nil")
	}
}

// badRequest checks that an adapter refuses a request as InvalidArgument
// naming field, without calling its feature (the fakes panic if called).
func badRequest(t *testing.T, name, field string, call func() error) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("the feature was called: %v", r)
			}
		}()
		err := call()
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("got %v, want InvalidArgument", err)
		}
		if got := fieldOf(err); got != field {
			t.Fatalf("field %q, want %q (%v)", got, field, err)
		}
	})
}

func fieldOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
			return br.FieldViolations[0].Field
		}
	}
	return ""
}

type noHosts struct{ Hosts }

func TestHostRequests(t *testing.T) {
	s := hostServer{f: noHosts{}}
	ctx := context.Background()
	badRequest(t, "update nothing", "schedulable", func() error {
		_, err := s.UpdateHost(ctx, &acliv1.UpdateHostRequest{Host: "h1"})
		return err
	})
	badRequest(t, "reason when schedulable", "reason", func() error {
		_, err := s.UpdateHost(ctx, &acliv1.UpdateHostRequest{Host: "h1", Schedulable: proto.Bool(true), Reason: "disk"})
		return err
	})
}

type noTasks struct{ Tasks }
type noEvents struct{ Events }

func TestTaskAndEventRequests(t *testing.T) {
	ts, es := taskServer{f: noTasks{}}, eventServer{f: noEvents{}}
	ctx := context.Background()
	badRequest(t, "task list limit", "limit", func() error {
		_, err := ts.ListTasks(ctx, &acliv1.ListTasksRequest{Limit: -1})
		return err
	})
	badRequest(t, "task get without uuid", "uuid", func() error {
		_, err := ts.GetTask(ctx, &acliv1.GetTaskRequest{})
		return err
	})
	badRequest(t, "task cancel without uuid", "uuid", func() error {
		_, err := ts.CancelTask(ctx, &acliv1.CancelTaskRequest{})
		return err
	})
	badRequest(t, "event type", "type", func() error {
		_, err := es.ListEvents(ctx, &acliv1.ListEventsRequest{Type: "vm.creat"})
		return err
	})
	badRequest(t, "event limit", "limit", func() error {
		_, err := es.ListEvents(ctx, &acliv1.ListEventsRequest{Limit: -5})
		return err
	})
	badRequest(t, "event watch type", "type", func() error {
		return es.WatchEvents(&acliv1.WatchEventsRequest{Type: "nosuch"}, nil)
	})
}

type listTasks struct {
	Tasks
	got *acliv1.ListTasksRequest
}

func (l *listTasks) ListTasks(_ context.Context, req *acliv1.ListTasksRequest) (*acliv1.ListTasksResponse, error) {
	l.got = req
	return &acliv1.ListTasksResponse{}, nil
}

func TestTaskListDefaultLimit(t *testing.T) {
	f := &listTasks{}
	if _, err := (taskServer{f: f}).ListTasks(context.Background(), &acliv1.ListTasksRequest{}); err != nil {
		t.Fatal(err)
	}
	if f.got.Limit != defaultListLimit {
		t.Fatalf("limit %d reached the feature, want %d", f.got.Limit, defaultListLimit)
	}
}

type noNetworks struct{ Networks }
type noVms struct{ Vms }

func TestNetworkAndVmRequests(t *testing.T) {
	ns, vs := networkServer{f: noNetworks{}}, vmServer{f: noVms{}}
	ctx := context.Background()
	for _, c := range []struct {
		name, field string
		req         *acliv1.CreateNetworkRequest
	}{
		{"network name", "name", &acliv1.CreateNetworkRequest{Name: "=5"}},
		{"network vlan", "vlan_id", &acliv1.CreateNetworkRequest{Name: "n1", VlanId: 4095}},
		{"network mode", "mode", &acliv1.CreateNetworkRequest{Name: "n1", Mode: 99}},
		{"network ip_config", "ip_config", &acliv1.CreateNetworkRequest{Name: "n1", IpConfig: "10.1.0.0"}},
	} {
		badRequest(t, c.name, c.field, func() error {
			_, err := ns.CreateNetwork(ctx, c.req)
			return err
		})
	}
	badRequest(t, "vm list power state", "power_state", func() error {
		_, err := vs.ListVms(ctx, &acliv1.ListVmsRequest{PowerState: 42})
		return err
	})
}

type createNetwork struct {
	Networks
	got *acliv1.CreateNetworkRequest
}

func (c *createNetwork) CreateNetwork(_ context.Context, req *acliv1.CreateNetworkRequest) (*acliv1.Task, error) {
	c.got = req
	return &acliv1.Task{}, nil
}

func TestCreateNetworkDefaults(t *testing.T) {
	f := &createNetwork{}
	req := &acliv1.CreateNetworkRequest{Name: "n1", IpConfig: "10.1.0.7/24"}
	if _, err := (networkServer{f: f}).CreateNetwork(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if f.got.Mode != acliv1.NetworkMode_kAccess || f.got.VswitchName != "vs0" || f.got.IpConfig != "10.1.0.7/24" {
		t.Fatalf("the feature got mode %s, vswitch %q, ip_config %q; want kAccess, vs0, 10.1.0.7/24 (the gateway kept)", f.got.Mode, f.got.VswitchName, f.got.IpConfig)
	}
}

type noVmGroups struct{ VmGroups }

func TestVmGroupRequests(t *testing.T) {
	s := vmServer{f: noVms{}, g: noVmGroups{}}
	ctx := context.Background()
	badRequest(t, "group name", "name", func() error {
		_, err := s.CreateVmGroup(ctx, &acliv1.CreateVmGroupRequest{Name: "a\u200bb"})
		return err
	})
	badRequest(t, "group update nothing", "group", func() error {
		_, err := s.UpdateVmGroup(ctx, &acliv1.UpdateVmGroupRequest{Group: "g1"})
		return err
	})
}

type oneVm struct {
	Vms
	vm *acliv1.Vm
}

func (o oneVm) ListVms(context.Context, *acliv1.ListVmsRequest) (*acliv1.ListVmsResponse, error) {
	return &acliv1.ListVmsResponse{Vms: []*acliv1.Vm{o.vm}}, nil
}

// BenchmarkAdapterListVms is what an adapter adds to a call: the request
// check, the interface call and the error mapping.
func BenchmarkAdapterListVms(b *testing.B) {
	s := vmServer{f: oneVm{vm: &acliv1.Vm{Name: "v1"}}}
	req := &acliv1.ListVmsRequest{PowerState: acliv1.PowerState_kOn}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ListVms(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
