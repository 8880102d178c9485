package rulestest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/rulestest"
)

// Event sequence numbers are never given twice, even across a SIGKILL:
// events published just before it (seen by a subscriber, not yet
// persisted) keep their numbers, and the restarted clusterd numbers past
// them.
func TestEventNumbersNotReusedAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sim.yaml")
	if err := os.WriteFile(cfg, []byte(soakSim), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &clusterd{t: t, bin: buildClusterd(t), addr: "127.47.0.1:0",
		args: []string{"--data-dir", filepath.Join(dir, "data"), "--sim-config", cfg, "--sim-speed", "1000", "--sim-ssh-port", "0", "--log-level", "warn"}}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.kill)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dial := func() rulestest.Clients {
		conn, err := grpc.NewClient(d.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return rulestest.NewClients(conn)
	}
	// seen publishes n events (VM creations) and returns the highest
	// sequence number a subscriber saw.
	seen := func(cl rulestest.Clients, round, n int) uint64 {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		stream, err := cl.Event.WatchEvents(wctx, &acliv1.WatchEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			task, err := cl.Vm.CreateVm(ctx, &acliv1.CreateVmRequest{Name: fmt.Sprintf("r%d-%d", round, i), MemoryBytes: 1 << 30, NumVcpus: 1})
			if _, err := cl.Run(ctx, task, err); err != nil {
				t.Fatal(err)
			}
		}
		final := fmt.Sprintf("r%d-%d", round, n-1)
		var last uint64
		for {
			e, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			last = max(last, e.Seq)
			for _, ref := range e.Entities {
				if ref.Name == final {
					return last
				}
			}
		}
	}
	var high uint64
	for round := range 3 {
		last := seen(dial(), round, 5)
		if last <= high {
			t.Fatalf("round %d: newest event %d, yet %d was seen before the SIGKILL: sequence numbers reused", round, last, high)
		}
		high = last
		// At once, before the background flush persists the newest events.
		if err := d.restart(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
