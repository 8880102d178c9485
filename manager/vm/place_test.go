package vm_test

import (
	"net/netip"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/vm"
)

// candidates are h1 and h2 of the fake with used bytes taken on each.
func candidates(used1, used2 int64) []scheduler.Candidate {
	return []scheduler.Candidate{
		{UUID: "uuid-h1", Name: "h1", IP: netip.MustParseAddr("127.48.0.1"), MemoryBytes: 8 * gib, MemoryUsedBytes: used1, CPUCores: 16},
		{UUID: "uuid-h2", Name: "h2", IP: netip.MustParseAddr("127.48.0.2"), MemoryBytes: 8 * gib, MemoryUsedBytes: used2, CPUCores: 16},
	}
}

// A power-on goes to the named host if it can take the VM, else where the
// groups place it, else where the placement function does; each refusal
// names the rules broken, per host.
func TestChooseHost(t *testing.T) {
	f := newFake(t)
	b := f.vm("b") // 2 GiB
	byRules := func(id string) func() (string, bool) { return func() (string, bool) { return id, id != "" } }
	for _, tc := range []struct {
		name  string
		named string
		p     vm.Placement
		want  string // the host, or the error
		code  codes.Code
	}{
		{"named", "h2", vm.Placement{Hosts: candidates(0, 0)}, "h2", codes.OK},
		{"named by IP", "127.48.0.1", vm.Placement{Hosts: candidates(0, 0)}, "h1", codes.OK},
		{"named and full", "h2", vm.Placement{Hosts: candidates(0, 7*gib)},
			"cannot power on vm b on host h2: host h2 (127.48.0.2): needs 2 GiB, 1 GiB free (short by 1 GiB)", codes.FailedPrecondition},
		{"named unknown", "h9", vm.Placement{Hosts: candidates(0, 0)}, `host "h9" not found...`, codes.NotFound},
		{"by its groups", "", vm.Placement{Hosts: candidates(0, 0), ByRules: byRules("uuid-h1"), Place: scheduler.MostFreeMemory}, "h1", codes.OK},
		{"by placement", "", vm.Placement{Hosts: candidates(1*gib, 0), ByRules: byRules(""), Place: scheduler.MostFreeMemory}, "h2", codes.OK},
		{"fits nowhere", "", vm.Placement{Hosts: candidates(7*gib, 7*gib), Place: scheduler.MostFreeMemory},
			"vm b (2 GiB) fits on no host: host h1 (127.48.0.1): needs 2 GiB, 1 GiB free (short by 1 GiB); host h2 (127.48.0.2): needs 2 GiB, 1 GiB free (short by 1 GiB)", codes.FailedPrecondition},
		{"no hosts", "", vm.Placement{Place: scheduler.MostFreeMemory}, "vm b cannot power on: the cluster has no hosts", codes.FailedPrecondition},
	} {
		h, err := vm.ChooseHost(f.db, b, tc.named, tc.p)
		if tc.code != codes.OK {
			wantErr(t, err, tc.code, tc.want)
			continue
		}
		if err != nil || h.GetName() != tc.want {
			t.Fatalf("%s: %v %v, want %s", tc.name, h, err, tc.want)
		}
	}
}
