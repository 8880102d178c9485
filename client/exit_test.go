package client

import (
	"slices"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestDetailsLeaveOutWhatTheMessageSays(t *testing.T) {
	st := status.New(codes.FailedPrecondition, "host h1 cannot enter maintenance mode: vm db01 is on; power it off first")
	st, _ = st.WithDetails(
		&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{
			{Type: "POWER_STATE", Subject: "vm:db01", Description: "vm db01 is on; power it off first"},
			{Type: "AFFINITY", Subject: "vm:web01", Description: "vm web01 has host affinity to h1"},
		}},
		&errdetails.ResourceInfo{ResourceType: "vm", ResourceName: "db01", Description: "already named"},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "memory", Description: "must be positive"}}},
	)
	got := Details(st)
	want := []string{"[AFFINITY] vm:web01: vm web01 has host affinity to h1", "memory: must be positive"}
	if !slices.Equal(got, want) {
		t.Fatalf("Details = %q, want %q", got, want)
	}
	e := Wrap(st.Err()).(*Error)
	if e.Code != ExitRefused || e.Msg != st.Message() || !slices.Equal(e.Details, want) {
		t.Fatalf("Wrap = %+v", e)
	}
}
