package events_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/events"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

// The log survives a restart: what was flushed is listed again, an
// unreadable record is skipped and logged, and numbering resumes past
// every number reserved, flushed or not.
func TestLogSurvivesARestart(t *testing.T) {
	ctx := context.Background()
	st, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))

	bus, err := events.Load(ctx, st, 2000, log)
	if err != nil {
		t.Fatal(err)
	}
	final := make(chan chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); bus.Persist(st, log, final) }()
	for _, m := range []string{"one", "two", "three", "four", "five"} {
		bus.Publish(&acliv1.Event{Type: "host", Message: m})
	}
	ack := make(chan struct{})
	final <- ack
	<-ack
	<-done
	if _, err := st.Txn(ctx, nil, []store.Op{store.PutOp(events.Prefix+"000099", []byte("not an event"))}); err != nil {
		t.Fatal(err)
	}

	again, err := events.Load(ctx, st, 2000, log)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range again.List("", 0) {
		got = append(got, e.Message)
	}
	if strings.Join(got, " ") != "one two three four five" {
		t.Errorf("after a restart the log holds %q; want the five events", got)
	}
	if seq := again.Publish(&acliv1.Event{Type: "host", Message: "six"}); seq <= 5 {
		t.Errorf("the first event after a restart is number %d; want one past every number reserved", seq)
	}
	if !strings.Contains(logged.String(), "skipping an unreadable event record") {
		t.Errorf("the unreadable record was not logged: %s", logged.String())
	}
}
