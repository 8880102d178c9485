package state

import (
	"slices"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

func TestIndex(t *testing.T) {
	ix := NewIndex((*acliv1.Network).GetName)
	ix.Put("6f1c0a52-0000-4000-8000-000000000001", &acliv1.Network{Uuid: "6f1c0a52-0000-4000-8000-000000000001", Name: "prod"})
	ix.Put("6f1c0a52-0000-4000-8000-000000000002", &acliv1.Network{Uuid: "6f1c0a52-0000-4000-8000-000000000002", Name: "dev"})
	if n, ok := ix.Find("6F1C0A52-0000-4000-8000-000000000001"); !ok || n.Name != "prod" {
		t.Errorf("Find by UUID in capitals = %v, %v", n, ok)
	}
	if n, ok := ix.Find("dev"); !ok || n.Uuid != "6f1c0a52-0000-4000-8000-000000000002" {
		t.Errorf("Find by name = %v, %v", n, ok)
	}
	// A rename frees the old name.
	ix.Put("6f1c0a52-0000-4000-8000-000000000002", &acliv1.Network{Uuid: "6f1c0a52-0000-4000-8000-000000000002", Name: "test"})
	if _, ok := ix.Named("dev"); ok {
		t.Error("the old name still finds the renamed network")
	}
	if got := ix.Names(); !slices.Equal(got, []string{"prod", "test"}) {
		t.Errorf("Names = %v", got)
	}
	ix.Delete("6f1c0a52-0000-4000-8000-000000000001")
	ix.Delete("nosuch")
	if _, ok := ix.Find("prod"); ok || ix.Len() != 1 {
		t.Errorf("after Delete: found prod or Len %d", ix.Len())
	}
}
