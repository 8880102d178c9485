package commands

import (
	"context"
	"os"
	"os/signal"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
)

// watchList runs a list command with --watch: it prints the listing, then
// reads it again after every cluster event and prints the rows that
// changed, until Ctrl-C or --timeout (exit 0 either way, as event.watch).
// Events are the trigger, not the data: a burst of them costs one read.
// A row that leaves the listing prints once more, marked deleted, or
// filtered out when all (the listing without the command's filters) still
// has it.
func watchList[T named](ctx context.Context, r *Req, c *client.Client, read, all func(context.Context) ([]T, error), table func([]T) *render.TableData) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	// The stream carries no deadline of its own (see runEventWatch).
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	// Events after the newest one now are replayed, so no change between
	// the first read and the start of the stream is missed.
	evs, err := c.Event.ListEvents(ctx, &acliv1.ListEventsRequest{Limit: 1})
	if err != nil {
		return watchEnd(ctx, err)
	}
	var since uint64
	if n := len(evs.GetEvents()); n > 0 {
		since = evs.GetEvents()[n-1].GetSeq()
	}
	stream, err := c.Event.WatchEvents(sctx, &acliv1.WatchEventsRequest{SinceSeq: since})
	if err != nil {
		return watchEnd(ctx, err)
	}
	changed := make(chan struct{}, 1)
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- err
				return
			}
			select {
			case changed <- struct{}{}:
			default: // a read is already due
			}
		}
	}()
	w := r.Printer.Watch()
	for {
		rows, err := read(ctx)
		if err != nil {
			return watchEnd(ctx, err)
		}
		rows = filterRows(r, rows)
		keys := make([]string, len(rows))
		items := make([]any, len(rows))
		for i, row := range rows {
			keys[i], items[i] = row.GetUuid(), row
		}
		// Only a row gone asks whether it still exists (one more read).
		var exists map[string]bool
		var allErr error
		gone := func(key string) string {
			if exists == nil && allErr == nil {
				exists = map[string]bool{}
				var every []T
				if every, allErr = all(ctx); allErr == nil {
					for _, e := range every {
						exists[e.GetUuid()] = true
					}
				}
			}
			if exists[key] {
				return "filtered out"
			}
			return "deleted"
		}
		if err := w.Update(keys, items, table(rows), gone); err != nil {
			return err
		}
		if allErr != nil {
			return watchEnd(ctx, allErr)
		}
		select {
		case <-changed:
		case err := <-ended:
			return watchEnd(ctx, err)
		case <-ctx.Done():
			return nil
		}
	}
}
