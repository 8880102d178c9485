package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/store"
)

// The log's copy in the store: events in slots /events/<seq mod capacity>,
// a ring like the bus, written in the background (Persist), so the log
// survives restarts without adding to the cost of each task.
const (
	Prefix = "/events/"
	// SeqKey holds the highest sequence number reserved (Bus.Reserve);
	// not under Prefix, which holds events only.
	SeqKey = "/event-seq"
)

// Sequence numbers are reserved in blocks, one store write per seqBlock
// events; a crash skips the rest of a block.
const (
	seqBlock   = 1000
	seqTimeout = 5 * time.Second
	// flushInterval is how often new events are written to the store: up
	// to one interval of events can be lost in a crash.
	flushInterval = 250 * time.Millisecond
)

func key(seq uint64, capacity int) string {
	return fmt.Sprintf("%s%06d", Prefix, seq%uint64(capacity))
}

// Load is the bus of the events st retains, numbering past every number
// reserved before: the events of the last moments before a crash were
// never persisted, but subscribers may have seen them, so their numbers
// are not given again. The log is history, not state: a record that
// cannot be read is skipped and logged, never a reason to refuse to start.
func Load(ctx context.Context, st store.Store, capacity int, log *slog.Logger) (*Bus, error) {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	kvs, err := st.List(ctx, Prefix)
	if err != nil {
		return nil, fmt.Errorf("loading events: %w", err)
	}
	evs := make([]*acliv1.Event, 0, len(kvs))
	for _, kv := range kvs {
		e := &acliv1.Event{}
		if err := proto.Unmarshal(kv.Value, e); err != nil || e.Seq == 0 {
			if err == nil {
				err = errors.New("no sequence number")
			}
			log.Warn("skipping an unreadable event record", "key", kv.Key, "err", err)
			continue
		}
		evs = append(evs, e)
	}
	slices.SortFunc(evs, func(a, b *acliv1.Event) int { return int(a.Seq - b.Seq) })
	var after uint64
	switch kv, err := st.Get(ctx, SeqKey); {
	case err == nil:
		if after, err = strconv.ParseUint(string(kv.Value), 10, 64); err != nil {
			log.Warn("skipping an unreadable event sequence record", "key", SeqKey, "err", err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("loading the event sequence: %w", err)
	}
	bus := New(capacity, after)
	bus.Restore(evs)
	bus.loaded = bus.Last()
	bus.Reserve(seqBlock, func(upTo uint64) error {
		ctx, cancel := context.WithTimeout(context.Background(), seqTimeout)
		defer cancel()
		_, err := st.Txn(ctx, nil, []store.Op{store.PutOp(SeqKey, []byte(strconv.FormatUint(upTo, 10)))})
		if err != nil {
			log.Error("reserving event sequence numbers", "up to", upTo, "err", err)
		}
		return err
	})
	return bus, nil
}

// Persist writes the events published since Load to st every flush
// interval until a last flush is asked for on final: it flushes, closes
// the channel it was sent and returns.
func (b *Bus) Persist(st store.Store, log *slog.Logger, final <-chan chan struct{}) {
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	flushed := b.loaded
	flush := func() {
		evs := b.Since(flushed)
		if len(evs) == 0 {
			return
		}
		ops := make([]store.Op, 0, len(evs))
		for _, e := range evs {
			v, err := proto.Marshal(e)
			if err != nil {
				continue
			}
			ops = append(ops, store.PutOp(key(e.Seq, b.cap), v))
		}
		if _, err := st.Txn(context.Background(), nil, ops); err != nil {
			log.Error("persisting events", "err", err)
			return
		}
		flushed = evs[len(evs)-1].Seq
	}
	for {
		select {
		case <-t.C:
			flush()
		case ack := <-final:
			flush()
			close(ack)
			return
		}
	}
}
