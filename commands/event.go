package commands

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/api/eventtypes"
	"github.com/acli-dev/acli/render"
)

// eventTypes are the event types clusterd emits.
var eventTypes = func() []EnumValue {
	out := make([]EnumValue, len(eventtypes.Types))
	for i, n := range eventtypes.Types {
		out[i] = EnumValue{Name: n, Value: int32(i + 1)}
	}
	return out
}()

var eventTypeKey = Key{Name: "type", Type: TypeEnum, Enum: eventTypes, Help: "only events of this type (default: all)"}

func eventCommands() []*Command {
	return []*Command{
		{
			Name:    "event.list",
			Summary: "List recent cluster events, oldest first",
			Keys: []Key{
				eventTypeKey,
				{Name: "limit", Type: TypeInt, Default: "100", Min: 1, Max: 100000, Help: "at most this many of the newest"},
			},
			Output:   OutputTable,
			Examples: []string{"event.list", "event.list type=iscsi limit=20", "-o json event.list type=host"},
			Run:      runEventList,
		},
		{
			Name:    "event.watch",
			Summary: "Print cluster events as they happen",
			Description: "Streams events from clusterd, one line each (time, type, message), until Ctrl-C (in the shell it " +
				"returns to the prompt) or --timeout ends it; either way it exits 0. since_seq= first replays the retained " +
				"events after that sequence number (see event.list), so nothing is missed between a list and a watch.\n\n" +
				"With -o json it prints one JSON object per event per line (NDJSON) as each arrives, not the one-document " +
				"envelope of other commands: a stream has no end to wrap. If the stream fails, a last line carries the " +
				"envelope with the error and the exit code is non-zero. -o yaml prints one document per event, -o csv one row.",
			Keys: []Key{
				eventTypeKey,
				{Name: "since_seq", Type: TypeInt, Default: "0", Min: 0, Max: 1 << 62, Help: "replay retained events after this sequence number first (0: only new events)"},
			},
			Output:   OutputText,
			Examples: []string{"event.watch type=iscsi", "--timeout 30s event.watch", "-o json event.watch type=host since_seq=120"},
			Run:      runEventWatch,
		},
	}
}

func runEventList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Event.ListEvents(ctx, &acliv1.ListEventsRequest{Type: r.String("type"), Limit: r.Int32("limit")})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: resp.GetEvents(), Table: eventTable(resp.GetEvents())})
}

func runEventWatch(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	// Ctrl-C is how a watch is meant to end, so it is a clean exit: in a
	// one-shot command as in the shell, which cancels ctx itself.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	// The stream carries no deadline of its own: it ends only when ctx does,
	// so an end is always seen as ctx's (a deadline sent to the server could
	// come back as an error before ctx expires here).
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	r.Printer.BeginStream()
	stream, err := c.Event.WatchEvents(sctx, &acliv1.WatchEventsRequest{Type: r.String("type"), SinceSeq: uint64(r.Int("since_seq"))})
	if err != nil {
		return watchEnd(ctx, err)
	}
	for {
		e, err := stream.Recv()
		if err != nil {
			return watchEnd(ctx, err)
		}
		if err := r.Printer.Stream(render.Doc{Data: e, Text: eventLine(r.Printer, e), Table: eventTable([]*acliv1.Event{e})}); err != nil {
			return err
		}
	}
}

// watchEnd tells a watch that ended as asked (Ctrl-C, --timeout, the
// server closing the stream) from one that failed.
func watchEnd(ctx context.Context, err error) error {
	if errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil
	}
	return err
}
