package vmgroup

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

func TestTable(t *testing.T) {
	tab := NewTable()
	tab.Put(&acliv1.VmGroup{Uuid: "g1", Name: "web", AntiAffinity: true, VmUuids: []string{"v2", "v1"}}, 1)
	tab.Put(&acliv1.VmGroup{Uuid: "g2", Name: "db", AntiAffinity: true, VmUuids: []string{"v1"}}, 2)
	tab.Put(&acliv1.VmGroup{Uuid: "g3", Name: "misc", VmUuids: []string{"v1", "v3"}}, 3)
	// A rename frees the old name.
	tab.Put(&acliv1.VmGroup{Uuid: "g3", Name: "other", VmUuids: []string{"v1", "v3"}}, 4)
	if tab.Named("misc") != nil {
		t.Error("the old name still finds the renamed group")
	}
	if r, err := tab.Lookup("G1"); err != nil || r.PB.Name != "web" {
		t.Errorf("Lookup by UUID in capitals = %v, %v", r, err)
	}
	if r, err := tab.Lookup("other"); err != nil || r.Rev != 4 {
		t.Errorf("Lookup by name = %v, %v", r, err)
	}
	_, err := tab.Lookup("wbe")
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `"web"`) {
		t.Errorf("Lookup(wbe) = %v, want not found naming web", err)
	}
	aa := tab.AntiAffinity()
	if !slices.Equal(aa["v1"], []string{"g1", "g2"}) || !slices.Equal(aa["v2"], []string{"g1"}) || aa["v3"] != nil {
		t.Errorf("AntiAffinity = %v", aa)
	}
	list := tab.List(func(id string) bool { return id != "v1" })
	var names []string
	for _, g := range list {
		names = append(names, g.Name)
		if slices.Contains(g.VmUuids, "v1") {
			t.Errorf("group %s lists the deleted vm v1", g.Name)
		}
	}
	if !slices.Equal(names, []string{"db", "other", "web"}) {
		t.Errorf("List names = %v", names)
	}
	if r, _ := tab.Lookup("web"); len(r.PB.VmUuids) != 2 {
		t.Error("List changed the committed record")
	}
	tab.Delete("g2")
	if _, err := tab.Lookup("db"); err == nil {
		t.Error("a deleted group is still found")
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
