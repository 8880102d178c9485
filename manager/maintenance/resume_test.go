package maintenance

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

func TestResumable(t *testing.T) {
	host := []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kHost, Name: "h1"}}
	for _, tc := range []struct {
		pb   *acliv1.Task
		want bool
	}{
		{&acliv1.Task{Operation: acliv1.TaskOperation_kHostEnterMaintenanceMode, Entities: host}, true},
		{&acliv1.Task{Operation: acliv1.TaskOperation_kHostEnterMaintenanceMode}, false},
		{&acliv1.Task{Operation: acliv1.TaskOperation_kHostEnterMaintenanceMode, Entities: []*acliv1.EntityRef{{Kind: acliv1.EntityKind_kCvm}}}, false},
		{&acliv1.Task{Operation: acliv1.TaskOperation_kHostExitMaintenanceMode, Entities: host}, false},
		{&acliv1.Task{Operation: acliv1.TaskOperation_kVmMigrate, Entities: host}, false},
	} {
		if got := Resumable(tc.pb); got != tc.want {
			t.Errorf("Resumable(%v) = %v", tc.pb, got)
		}
	}
}

func TestResumeRefusal(t *testing.T) {
	entering := &acliv1.Host{Name: "h1", HypervisorIp: "127.48.0.1", NodeState: acliv1.NodeState_EnteringMaintenanceMode}
	normal := &acliv1.Host{Name: "h1", HypervisorIp: "127.48.0.1", NodeState: acliv1.NodeState_AcropolisNormal}
	if err := ResumeRefusal("h1", entering, ""); err != nil {
		t.Fatalf("an evacuation that may go on: %v", err)
	}
	for _, tc := range []struct {
		h    *acliv1.Host
		busy string
		code codes.Code
		want string
	}{
		{nil, "", codes.NotFound, "host h1 is gone; the evacuation cannot go on"},
		{normal, "", codes.FailedPrecondition, "host h1 (127.48.0.1) is AcropolisNormal, no longer entering maintenance mode; the evacuation stops there"},
		{entering, "t2", codes.Aborted, "host h1 (127.48.0.1) is busy with task t2; the evacuation stops there"},
	} {
		st := status.Convert(ResumeRefusal("h1", tc.h, tc.busy))
		if st.Code() != tc.code || st.Message() != tc.want {
			t.Errorf("got %s %q, want %s %q", st.Code(), st.Message(), tc.code, tc.want)
		}
	}
}
