package tasks

import (
	"context"
	"errors"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
)

// Service serves the task service (manager/rpc's Tasks) from an engine.
type Service struct {
	*Engine
	// Draining closes when the server stops: watches end, Unavailable.
	Draining <-chan struct{}
}

// ListTasks lists the newest tasks; an entity given by name or UUID
// matches tasks naming it either way.
func (s Service) ListTasks(_ context.Context, req *acliv1.ListTasksRequest) (*acliv1.ListTasksResponse, error) {
	match := func(*acliv1.Task) bool { return true }
	if req.Entity != "" {
		want := map[string]bool{req.Entity: true, strings.ToLower(req.Entity): true}
		s.db.View(func(tx *state.Tx) {
			for _, v := range tx.VmsNamed(req.Entity) {
				want[v.Uuid] = true
			}
			for _, h := range []*acliv1.Host{tx.HostNamed(req.Entity), tx.HostByIP(req.Entity)} {
				if h != nil {
					want[h.Uuid] = true
				}
			}
			if n := tx.FindNetwork(req.Entity); n != nil {
				want[n.Uuid] = true
			}
		})
		match = func(t *acliv1.Task) bool {
			for _, e := range t.Entities {
				if want[e.Uuid] || want[e.Name] {
					return true
				}
			}
			return false
		}
	}
	return &acliv1.ListTasksResponse{Tasks: s.Newest(int(req.Limit), func(t *acliv1.Task) bool {
		return (req.IncludeCompleted || !Finished(t.Status)) && match(t) &&
			(len(req.OperationTypes) == 0 || slices.Contains(req.OperationTypes, t.Operation))
	})}, nil
}

// GetTask is a task's current snapshot.
func (s Service) GetTask(_ context.Context, req *acliv1.GetTaskRequest) (*acliv1.Task, error) {
	t, err := s.Lookup(req.Uuid)
	if err != nil {
		return nil, err
	}
	return t.PB(), nil
}

// WatchTask sends the task now and on every change; the last message is
// the final state. A slow watcher may skip intermediate states, never the
// last.
func (s Service) WatchTask(ctx context.Context, req *acliv1.GetTaskRequest, send func(*acliv1.Task) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-s.Draining:
			cancel(status.Error(codes.Unavailable, "clusterd is shutting down; watch the task again after it restarts"))
		case <-ctx.Done():
		}
	}()
	err := Follow(ctx, func() (*acliv1.Task, <-chan struct{}, error) {
		t, err := s.Lookup(req.Uuid)
		if err != nil {
			return nil, nil, err
		}
		pb, changed := t.Watch()
		return pb, changed, nil
	}, send)
	if errors.Is(err, ErrAbandoned) {
		return status.Errorf(codes.Aborted, "task %s was abandoned before it was recorded", req.Uuid)
	}
	return err
}
