package vm_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

func names(vs []*acliv1.Vm) string {
	var out []string
	for _, v := range vs {
		s := v.Name
		if v.BusyTaskUuid != "" {
			s += "*"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func TestListVmsFiltersAndMarksBusy(t *testing.T) {
	f := newFake(t)
	f.addPaused(t, "p", "h2")
	f.svc.CreateVm(bg, &acliv1.CreateVmRequest{Name: "0first", MemoryBytes: gib})
	f.take(acliv1.TaskOperation_kVmMigrate, "uuid-b")
	for _, tc := range []struct {
		req  *acliv1.ListVmsRequest
		want string
	}{
		{&acliv1.ListVmsRequest{}, "0first a b* p"},
		{&acliv1.ListVmsRequest{Host: "h1"}, "a"},
		{&acliv1.ListVmsRequest{Host: "127.48.0.2"}, "p"},
		{&acliv1.ListVmsRequest{Host: "uuid-h2", PowerState: acliv1.PowerState_kOn}, ""},
		{&acliv1.ListVmsRequest{PowerState: acliv1.PowerState_kOff}, "0first b*"},
	} {
		resp, err := f.svc.ListVms(bg, tc.req)
		if err != nil {
			t.Fatal(err)
		}
		// Decoded as a client would.
		wire, _ := proto.Marshal(resp)
		var got acliv1.ListVmsResponse
		if err := proto.Unmarshal(wire, &got); err != nil {
			t.Fatal(err)
		}
		if s := names(got.Vms); s != tc.want {
			t.Fatalf("%v: %q, want %q", tc.req, s, tc.want)
		}
	}
	_, err := f.svc.ListVms(bg, &acliv1.ListVmsRequest{Host: "h3"})
	wantErr(t, err, codes.NotFound, `host "h3" not found (did you mean "h1"?)`)
}

func TestGetVmResolves(t *testing.T) {
	f := newFake(t)
	v, err := f.svc.GetVm(bg, &acliv1.GetVmRequest{Vm: "UUID-A"})
	if err != nil || v.Name != "a" || v.BusyTaskUuid != "" {
		t.Fatalf("by UUID: %v %v", v, err)
	}
	f.take(acliv1.TaskOperation_kVmMigrate, "uuid-a")
	if v, err = f.svc.GetVm(bg, &acliv1.GetVmRequest{Vm: "a"}); err != nil || v.BusyTaskUuid != f.busy["uuid-a"].PB().Uuid {
		t.Fatalf("busy: %v %v", v, err)
	}
	if f.vm("a").BusyTaskUuid != "" {
		t.Fatal("the committed record was changed")
	}
	_, err = f.svc.GetVm(bg, &acliv1.GetVmRequest{Vm: "bb"})
	wantErr(t, err, codes.NotFound, `vm "bb" not found (did you mean "b"?)`)
	_, err = f.svc.GetVm(bg, &acliv1.GetVmRequest{Vm: ""})
	wantErr(t, err, codes.InvalidArgument, "vm is required: give a VM name or UUID")
	_, err = f.svc.GetVm(bg, &acliv1.GetVmRequest{Vm: strings.Repeat("x", state.MaxNameBytes+1)})
	wantErr(t, err, codes.InvalidArgument, "vm is 256 bytes long; no name or UUID is longer than 255")

	// A name two VMs share needs the UUID.
	f.svc.CreateVm(bg, &acliv1.CreateVmRequest{Name: "twin", MemoryBytes: gib, Uuid: "00000000-0000-4000-8000-000000000001"})
	f.svc.CreateVm(bg, &acliv1.CreateVmRequest{Name: "twin", MemoryBytes: gib, Uuid: "00000000-0000-4000-8000-000000000002"})
	_, err = f.svc.DeleteVm(bg, &acliv1.DeleteVmRequest{Vm: "twin"})
	wantErr(t, err, codes.InvalidArgument, `vm name "twin" is ambiguous: 2 VMs have it (00000000-0000-4000-8000-000000000001, 00000000-0000-4000-8000-000000000002); give the UUID`)
}
