package rpc

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/api/eventtypes"
	"github.com/acli-dev/acli/manager/apierr"
)

// Events lists and streams the event log.
type Events interface {
	ListEvents(context.Context, *acliv1.ListEventsRequest) (*acliv1.ListEventsResponse, error)
	// WatchEvents sends the events after req.SinceSeq, then each new one.
	WatchEvents(ctx context.Context, req *acliv1.WatchEventsRequest, send func(*acliv1.Event) error) error
}

type eventServer struct {
	acliv1.UnsafeEventServiceServer
	f Events
}

func registerEvents(s grpc.ServiceRegistrar, f Events) {
	acliv1.RegisterEventServiceServer(s, eventServer{f: f})
}

func checkEventType(typ string) error {
	if typ == "" || slices.Contains(eventtypes.Types, typ) {
		return nil
	}
	if s := apierr.Nearest(typ, eventtypes.Types); s != "" {
		return apierr.BadField("type", "unknown event type %q (did you mean %q?)", typ, s)
	}
	return apierr.BadField("type", "unknown event type %q; use one of %s", typ, strings.Join(eventtypes.Types, ", "))
}

func (s eventServer) ListEvents(ctx context.Context, req *acliv1.ListEventsRequest) (*acliv1.ListEventsResponse, error) {
	if err := checkEventType(req.Type); err != nil {
		return nil, err
	}
	if req.Limit < 0 {
		return nil, apierr.BadField("limit", "limit %d must not be negative", req.Limit)
	}
	if req.Limit == 0 {
		req.Limit = defaultListLimit
	}
	return reply(s.f.ListEvents(ctx, req))
}

func (s eventServer) WatchEvents(req *acliv1.WatchEventsRequest, stream acliv1.EventService_WatchEventsServer) error {
	if err := checkEventType(req.Type); err != nil {
		return err
	}
	return Status(s.f.WatchEvents(stream.Context(), req, stream.Send))
}
