package auth

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/acli-dev/acli/api/acli/v1"
	_ "google.golang.org/grpc/health/grpc_health_v1"
	_ "google.golang.org/grpc/reflection/grpc_reflection_v1"
	_ "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// TestEveryRPCHasARole walks every service of the generated descriptors
// clusterd serves: an RPC without a role would be refused to everyone, and
// a role for an RPC that no longer exists is a stale table.
func TestEveryRPCHasARole(t *testing.T) {
	served := map[string]bool{}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		switch fd.Package() {
		case "acli.v1", "grpc.health.v1", "grpc.reflection.v1", "grpc.reflection.v1alpha":
		default:
			return true
		}
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				served["/"+string(sd.FullName())+"/"+string(sd.Methods().Get(j).Name())] = true
			}
		}
		return true
	})
	if len(served) < 60 {
		t.Fatalf("found only %d RPCs; are the generated packages linked?", len(served))
	}
	for m := range served {
		if r, ok := RoleFor(m); !ok || r == None {
			t.Errorf("%s has no role: add it to methodRoles in roles.go (and run make docs)", m)
		}
	}
	for _, m := range Methods() {
		if !served[m] {
			t.Errorf("methodRoles lists %s, which no service has", m)
		}
	}
}

func TestRolesNest(t *testing.T) {
	for _, c := range []struct {
		have, need Role
		ok         bool
	}{
		{Viewer, Viewer, true}, {Viewer, Operator, false}, {Viewer, Admin, false},
		{Operator, Viewer, true}, {Operator, Operator, true}, {Operator, Admin, false},
		{Admin, Viewer, true}, {Admin, Operator, true}, {Admin, Admin, true},
		{None, Public, true}, {None, Viewer, false},
	} {
		if got := c.have.Allows(c.need); got != c.ok {
			t.Errorf("%s.Allows(%s) = %v, want %v", c.have, c.need, got, c.ok)
		}
	}
}
