package tasks

import (
	"fmt"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Event is what a finished task tells the event log: the event type (of
// its first entity's kind), the severity and the text (message, else
// "<op> succeeded"; a failure names the op, the entity and the error).
func Event(pb *acliv1.Task, message string) (typ, severity, text string) {
	typ = "task"
	if len(pb.Entities) > 0 {
		typ = EventType(pb.Entities[0].Kind)
	}
	if pb.Status == acliv1.TaskStatus_kSucceeded {
		if message == "" {
			message = pb.Operation.String() + " succeeded"
		}
		return typ, "info", message
	}
	name := ""
	if len(pb.Entities) > 0 {
		name = " of " + pb.Entities[0].Name
	}
	return typ, "error", fmt.Sprintf("%s%s failed: %s", pb.Operation, name, pb.Error)
}

// EventType is the event type of an entity kind ("task" for kinds
// without one).
func EventType(k acliv1.EntityKind) string {
	switch k {
	case acliv1.EntityKind_kVm:
		return "vm"
	case acliv1.EntityKind_kHost:
		return "host"
	case acliv1.EntityKind_kNetwork:
		return "network"
	case acliv1.EntityKind_kVolumeGroup:
		return "vg"
	case acliv1.EntityKind_kCvm:
		return "cvm"
	case acliv1.EntityKind_kCluster:
		return "cluster"
	}
	return "task"
}
