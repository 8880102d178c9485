package state_test

import (
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

// A refusal of the rules reaches the API as itself, however wrapped:
// FailedPrecondition with its typed violations.
func TestRefusalsAnswerAsTheAPI(t *testing.T) {
	ve := &state.ViolationError{Violations: []state.Violation{
		{Rule: state.RuleMemory, Subject: "host:h1", Description: "h1 would hold 9 GiB of 8 GiB"},
		{Rule: state.RuleName, Subject: "vm:x", Description: "bad name"},
	}}
	st := status.Convert(fmt.Errorf("could not record the result: %w", ve))
	if st.Code() != codes.FailedPrecondition {
		t.Fatalf("code %v, want FailedPrecondition", st.Code())
	}
	var got []string
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.Violations {
				got = append(got, v.Type+" "+v.Subject)
			}
		}
	}
	if fmt.Sprint(got) != "[MEMORY host:h1 NAME vm:x]" {
		t.Errorf("violations %v", got)
	}
	if !state.Refused(fmt.Errorf("x: %w", ve)) || state.Refused(fmt.Errorf("x")) {
		t.Error("Refused")
	}
	h := &acliv1.Host{Name: "h1", NodeState: acliv1.NodeState_kNodeDown}
	_, err := state.TransitionHost(h, state.EnterMaintenance)
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != err.Error() {
		t.Fatalf("a refused transition answers %v %q, want FailedPrecondition %q", st.Code(), st.Message(), err)
	}
}
