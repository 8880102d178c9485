package apierr

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestNearest(t *testing.T) {
	cands := []string{"scsi", "ide", "sata", "pci"}
	for in, want := range map[string]string{"scis": "scsi", "SATA": "sata", "idee": "ide", "zzzzzz": "", "": ""} {
		if got := Nearest(in, cands); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFailedPreconditionListsEveryViolation(t *testing.T) {
	var vs []Violation
	for _, h := range []string{"h1", "h2", "h3", "h4", "h5", "h6"} {
		vs = append(vs, Violation{Type: "MEMORY", Subject: "host:" + h, Description: h + " short"})
	}
	st := status.Convert(FailedPrecondition("vm big fits on no host", vs...))
	if st.Code() != codes.FailedPrecondition || !strings.HasSuffix(st.Message(), "h4 short; and 2 more") {
		t.Fatalf("message %q", st.Message())
	}
	pf := st.Details()[0].(*errdetails.PreconditionFailure)
	if len(pf.Violations) != 6 {
		t.Fatalf("details carry %d violations, want all 6", len(pf.Violations))
	}
}

// Summary is the headline alone, whatever the number of violations the
// message lists after it.
func TestSummaryLeavesOutTheViolations(t *testing.T) {
	v := func(n int) []Violation {
		var vs []Violation
		for i := range n {
			vs = append(vs, Violation{Type: "BLOCKED", Subject: fmt.Sprintf("vm:v%d", i), Description: fmt.Sprintf("vm v%d: cannot leave", i)})
		}
		return vs
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{FailedPrecondition("host h1 stays EnteringMaintenanceMode: 1 VM(s) cannot leave", v(1)...), "host h1 stays EnteringMaintenanceMode: 1 VM(s) cannot leave"},
		{FailedPrecondition("host h1 stays EnteringMaintenanceMode: 6 VM(s) cannot leave", v(6)...), "host h1 stays EnteringMaintenanceMode: 6 VM(s) cannot leave"},
		{Precondition("REDUNDANCY", "host:h2", "h2 is already out"), ""},
		{FailedPrecondition("no violations"), "no violations"},
		{status.Error(codes.Internal, "disk on fire"), "disk on fire"},
		{fmt.Errorf("plain"), "plain"},
	} {
		if got := Summary(c.err); got != c.want {
			t.Errorf("Summary(%q) = %q, want %q", status.Convert(c.err).Message(), got, c.want)
		}
	}
}

func TestNotFoundSuggests(t *testing.T) {
	st := status.Convert(NotFound("vm", "web1", []string{"web01", "db01"}))
	if st.Message() != `vm "web1" not found (did you mean "web01"?)` {
		t.Fatalf("message %q", st.Message())
	}
	ri := st.Details()[0].(*errdetails.ResourceInfo)
	if ri.ResourceType != "vm" || ri.ResourceName != "web1" {
		t.Fatalf("ResourceInfo %v", ri)
	}
}

func TestNotFoundBecauseNamesWhatWasMissing(t *testing.T) {
	st := status.Convert(NotFoundBecause("gpu", "T4", "vm vdi01 has no GPU"))
	if st.Code() != codes.NotFound || st.Message() != `gpu "T4" not found: vm vdi01 has no GPU` {
		t.Fatalf("%v %q", st.Code(), st.Message())
	}
	ri := st.Details()[0].(*errdetails.ResourceInfo)
	if ri.ResourceType != "gpu" || ri.ResourceName != "T4" {
		t.Fatalf("ResourceInfo %v", ri)
	}
}

// Defect 6: a suggestion's work is bounded, whatever the reference and the
// number of candidates.
func TestNearestIsBounded(t *testing.T) {
	names := make([]string, 20000)
	for i := range names {
		names[i] = fmt.Sprintf("vm-%05d", i)
	}
	if got := Nearest(strings.Repeat("x", 1<<20), names); got != "" {
		t.Fatalf("a 1 MiB reference got suggestion %q", got)
	}
	if got := Nearest("vm-0001", names); got != "vm-00001" && got != "vm-00010" {
		t.Fatalf("nearest of vm-0001 = %q", got)
	}
}

func BenchmarkNearest20000(b *testing.B) {
	names := make([]string, 20000)
	for i := range names {
		names[i] = fmt.Sprintf("vm-%05d", i)
	}
	for b.Loop() {
		Nearest("vm-1234x", names)
		Nearest(strings.Repeat("x", 1<<20), names)
	}
}
