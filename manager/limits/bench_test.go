package limits_test

import (
	"fmt"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/limits"
)

// The field walk runs on every request: its cost for a typical one and for
// a long list.
func BenchmarkCheckCreateVm(b *testing.B) {
	req := &acliv1.CreateVmRequest{Name: "web01", NumVcpus: 2, MemoryBytes: 4 << 30, Description: "web tier"}
	b.ReportAllocs()
	for b.Loop() {
		if err := limits.Check(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckVmGroup1000(b *testing.B) {
	req := &acliv1.UpdateVmGroupRequest{Group: "g"}
	for i := range 1000 {
		req.AddVms = append(req.AddVms, fmt.Sprintf("vm%04d", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := limits.Check(req); err != nil {
			b.Fatal(err)
		}
	}
}
