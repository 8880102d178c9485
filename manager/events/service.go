package events

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Service serves the event log behind manager/rpc's adapter.
type Service struct {
	Bus *Bus
	// Draining is closed when clusterd starts shutting down: watches end
	// with where to resume.
	Draining <-chan struct{}
}

// ListEvents lists the newest events of a type ("" for all).
func (s Service) ListEvents(ctx context.Context, req *acliv1.ListEventsRequest) (*acliv1.ListEventsResponse, error) {
	return &acliv1.ListEventsResponse{Events: s.Bus.List(req.Type, int(req.Limit))}, nil
}

// WatchEvents sends the events after req.SinceSeq, then each new one,
// until ctx ends, the watcher falls behind or clusterd drains.
func (s Service) WatchEvents(ctx context.Context, req *acliv1.WatchEventsRequest, send func(*acliv1.Event) error) error {
	sub := s.Bus.Subscribe(req.Type, req.SinceSeq)
	defer sub.Close()
	var last uint64
	for {
		select {
		case e, ok := <-sub.C():
			if !ok {
				return status.Errorf(codes.ResourceExhausted, "event stream fell behind; watch again with since_seq=%d", last)
			}
			if err := send(e); err != nil {
				return err
			}
			last = e.Seq
		case <-ctx.Done():
			return ctx.Err()
		case <-s.Draining:
			return status.Errorf(codes.Unavailable, "clusterd is shutting down; watch again with since_seq=%d after it restarts", last)
		}
	}
}
