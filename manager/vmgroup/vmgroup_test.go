package vmgroup

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/tasks/taskstest"
)

// newService is a service over a DB with hosts h1 (127.44.0.2) and h2
// (127.44.0.1), VM a running on h1 and VM b off.
func newService(t *testing.T) (*Service, *taskstest.Starter) {
	t.Helper()
	db := statetest.Open(t)
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Uuid: "uuid-c", Name: "c", RedundancyFactor: 2}, 0)
		for _, h := range []*acliv1.Host{{Uuid: "uuid-h1", Name: "h1", HypervisorIp: "127.44.0.2"}, {Uuid: "uuid-h2", Name: "h2", HypervisorIp: "127.44.0.1"}} {
			h.MemoryBytes, h.Schedulable, h.NodeState, h.CvmState = 8<<30, true, acliv1.NodeState_AcropolisNormal, acliv1.CvmState_kCvmUp
			tx.Put(state.HostKey(h.Uuid), h, 0)
		}
		tx.Put(state.VmKey("uuid-a"), &acliv1.Vm{Uuid: "uuid-a", Name: "a", MemoryBytes: 1 << 30, PowerState: acliv1.PowerState_kOn, HostUuid: "uuid-h1"}, 0)
		tx.Put(state.VmKey("uuid-b"), &acliv1.Vm{Uuid: "uuid-b", Name: "b", MemoryBytes: 1 << 30}, 0)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := taskstest.New(db)
	return &Service{DB: db, Tasks: ts}, ts
}

var bg = context.Background()

func wantCode(t *testing.T, err error, code codes.Code, sub string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), sub) {
		t.Fatalf("got %v, want %s containing %q", err, code, sub)
	}
}

func TestServiceGroups(t *testing.T) {
	s, ts := newService(t)
	for _, name := range []string{"web", "db"} {
		if _, err := s.CreateVmGroup(bg, &acliv1.CreateVmGroupRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.CreateVmGroup(bg, &acliv1.CreateVmGroupRequest{Name: "web"})
	wantCode(t, err, codes.AlreadyExists, "vm group names are unique")
	if _, err := s.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "web", AddVms: []string{"a", "b"}, AntiAffinity: proto.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "wbe", AddVms: []string{"a"}})
	wantCode(t, err, codes.NotFound, `vm_group "wbe" not found (did you mean "web"?)`)
	_, err = s.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "web", AddVms: []string{"c"}})
	wantCode(t, err, codes.NotFound, `vm "c" not found`)
	_, err = s.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "db", RemoveVms: []string{"a"}})
	wantCode(t, err, codes.FailedPrecondition, "vm a is not a member of vm group db")

	var aa map[string][]string
	s.DB.View(func(tx *state.Tx) { aa = AntiAffinity(tx) })
	if len(aa["uuid-a"]) != 1 || len(aa["uuid-b"]) != 1 {
		t.Fatalf("AntiAffinity = %v", aa)
	}
	// A deleted member is left out of the listing, not of the record.
	if _, err := s.DB.Update(bg, func(tx *state.Tx) error { tx.Delete(state.VmKey("uuid-b"), state.AnyRev); return nil }); err != nil {
		t.Fatal(err)
	}
	list, _ := s.ListVmGroups(bg, &acliv1.ListVmGroupsRequest{})
	if len(list.Groups) != 2 || list.Groups[0].Name != "db" || !slices.Equal(list.Groups[1].VmUuids, []string{"uuid-a"}) {
		t.Fatalf("list %v", list.Groups)
	}
	if _, err := s.DeleteVmGroup(bg, &acliv1.DeleteVmGroupRequest{Group: "db"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.DeleteVmGroup(bg, &acliv1.DeleteVmGroupRequest{Group: "db"})
	wantCode(t, err, codes.NotFound, `vm_group "db" not found`)
	if h := ts.Held(); len(h) != 0 {
		t.Fatalf("locks left held: %v", h)
	}
}

func TestServiceAffinity(t *testing.T) {
	s, ts := newService(t)
	// Hosts are kept in hypervisor IP order however they are typed.
	if _, err := s.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "b", Hosts: []string{"h1,127.44.0.1"}}); err != nil {
		t.Fatal(err)
	}
	var b *acliv1.Vm
	s.DB.View(func(tx *state.Tx) { b = tx.Vm("uuid-b") })
	if !slices.Equal(b.HostAffinity, []string{"uuid-h2", "uuid-h1"}) {
		t.Fatalf("affinity %v", b.HostAffinity)
	}
	_, err := s.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "a", Hosts: []string{"h2"}})
	wantCode(t, err, codes.FailedPrecondition, "vm a runs on h1 (127.44.0.2), outside the new host affinity; migrate it first (vm.migrate a host=h2)")
	_, err = s.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "a", Hosts: []string{"h3"}})
	wantCode(t, err, codes.NotFound, `host "h3" not found`)
	if _, err := s.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "b"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"kVmSetAffinity: vm b host affinity set to h2 (127.44.0.1), h1 (127.44.0.2)", "kVmSetAffinity: dropped", "kVmSetAffinity: dropped", "kVmSetAffinity: vm b host affinity cleared"}
	if got := ts.Ended(); !slices.Equal(got, want) {
		t.Fatalf("tasks ended\n%q\nwant\n%q", got, want)
	}
}

func TestEdit(t *testing.T) {
	cur := &acliv1.VmGroup{Uuid: "g1", Name: "web", VmUuids: []string{"v1"}}
	v1, v2 := Member{UUID: "v1", Name: "a"}, Member{UUID: "v2", Name: "b"}
	g, msg, err := Edit(cur, []Member{v1, v2}, nil, proto.Bool(true))
	if err != nil || !slices.Equal(g.VmUuids, []string{"v1", "v2"}) || !g.AntiAffinity ||
		msg != "vm group web: added b, anti-affinity set" {
		t.Fatalf("Edit add = %v, %q, %v", g, msg, err)
	}
	if len(cur.VmUuids) != 1 || cur.AntiAffinity {
		t.Fatal("Edit changed the committed record")
	}
	if g, msg, err = Edit(g, nil, []Member{v1}, proto.Bool(false)); err != nil || !slices.Equal(g.VmUuids, []string{"v2"}) ||
		msg != "vm group web: removed a, anti-affinity unset" {
		t.Fatalf("Edit remove = %v, %q, %v", g, msg, err)
	}
	if _, msg, err = Edit(g, []Member{v2}, nil, proto.Bool(false)); err != nil || msg != "vm group web unchanged" {
		t.Fatalf("Edit no-op = %q, %v", msg, err)
	}
	if _, _, err = Edit(g, nil, []Member{v1}, nil); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "vm a is not a member of vm group web") {
		t.Fatalf("Edit removing a non-member = %v", err)
	}
}

// Members and affinity name their VM by UUID or unique name, resolved in
// the committed state; one ambiguous or missing member refuses the whole
// edit, and no task is begun for it.
func TestServiceVmByUuidOrUniqueName(t *testing.T) {
	s, ts := newService(t)
	_, err := s.DB.Update(bg, func(tx *state.Tx) error {
		tx.Put(state.VmKey("uuid-d1"), &acliv1.Vm{Uuid: "uuid-d1", Name: "dup", MemoryBytes: 1 << 30}, 0)
		tx.Put(state.VmKey("uuid-d2"), &acliv1.Vm{Uuid: "uuid-d2", Name: "dup", MemoryBytes: 1 << 30}, 0)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVmGroup(bg, &acliv1.CreateVmGroupRequest{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "web", AddVms: []string{"a", "dup"}})
	wantCode(t, err, codes.InvalidArgument, `vm name "dup" is ambiguous: 2 VMs have it (uuid-d1, uuid-d2)`)
	if _, err := s.UpdateVmGroup(bg, &acliv1.UpdateVmGroupRequest{Group: "web", AddVms: []string{"a", "uuid-d1"}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "dup", Hosts: []string{"h1"}})
	wantCode(t, err, codes.InvalidArgument, "ambiguous")
	if _, err := s.SetAffinity(bg, &acliv1.SetAffinityRequest{Vm: "uuid-d2", Hosts: []string{"h1"}}); err != nil {
		t.Fatal(err)
	}
	var g *acliv1.VmGroup
	var d2 *acliv1.Vm
	s.DB.View(func(tx *state.Tx) { g, d2 = tx.FindVmGroup("web"), tx.Vm("uuid-d2") })
	if !slices.Equal(g.VmUuids, []string{"uuid-a", "uuid-d1"}) || !slices.Equal(d2.HostAffinity, []string{"uuid-h1"}) {
		t.Fatalf("group %v, d2 affinity %v", g.VmUuids, d2.HostAffinity)
	}
	want := []string{"kVmGroupCreate: vm group web created", "kVmGroupUpdate: vm group web: added a, added dup", "kVmSetAffinity: vm dup host affinity set to h1 (127.44.0.2)"}
	if got := ts.Ended(); !slices.Equal(got, want) {
		t.Fatalf("tasks ended\n%q\nwant\n%q", got, want)
	}
}
