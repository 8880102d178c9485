package apierr

import (
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
