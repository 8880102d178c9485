package tasks

import (
	"context"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

// Starter begins the tasks of a feature package whose work is a commit of
// records (the manager's quick tasks); the manager implements it over its
// table and busy locks.
type Starter interface {
	// Begin starts a task op on refs holding locks (entity UUIDs and
	// claims such as "mac:<mac>"), and reading the entities of the
	// state.Read(id) among them (a copy's source: any number of tasks
	// read one at once, none changes it meanwhile). When another task
	// holds one, or reads one it would hold, it fails with the busy error
	// naming the ref with that UUID, else kind and refs[0].
	Begin(ctx context.Context, kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) (Quick, error)
}

// Quick is a task begun by a Starter.
type Quick interface {
	// Hold adds lock to the task's until it ends; when another task holds
	// it, it returns that task's UUID and false.
	Hold(lock string) (string, bool)
	// Commit records writes with the task's success in one transaction,
	// the rules checked on it; the task ends, and is forgotten when the
	// commit is refused.
	Commit(ctx context.Context, writes []state.Write, message string) (*acliv1.Task, error)
	// Drop forgets a task that commits nothing.
	Drop()
}

// Noun is how an entity of kind k reads in a message ("volume group").
func Noun(k acliv1.EntityKind) string {
	switch k {
	case acliv1.EntityKind_kVolumeGroup:
		return "volume group"
	case acliv1.EntityKind_kVmGroup:
		return "vm group"
	}
	return strings.ToLower(strings.TrimPrefix(k.String(), "k"))
}
