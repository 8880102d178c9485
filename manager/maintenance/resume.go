package maintenance

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Resumable reports whether a task a previous run (or a deposed leader)
// left running is carried on instead of failed: an evacuation commits each
// VM as it moves, so the next run plans again the VMs still on the host.
func Resumable(pb *acliv1.Task) bool {
	return pb.Operation == acliv1.TaskOperation_kHostEnterMaintenanceMode && len(pb.Entities) > 0 &&
		pb.Entities[0].Kind == acliv1.EntityKind_kHost
}

// ResumeRefusal says why an evacuation a previous run left running stops
// (nil if it goes on): its host h (named name in the task) is gone, is no
// longer entering maintenance mode, or busy names another task holding it.
func ResumeRefusal(name string, h *acliv1.Host, busy string) error {
	switch {
	case h == nil:
		return status.Errorf(codes.NotFound, "host %s is gone; the evacuation cannot go on", name)
	case h.NodeState != acliv1.NodeState_EnteringMaintenanceMode:
		return status.Errorf(codes.FailedPrecondition, "host %s is %s, no longer entering maintenance mode; the evacuation stops there", label(h), h.NodeState)
	case busy != "":
		return status.Errorf(codes.Aborted, "host %s is busy with task %s; the evacuation stops there", label(h), busy)
	}
	return nil
}
