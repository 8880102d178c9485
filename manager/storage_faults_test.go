package manager_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/bolt"
)

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// One unreadable event record is skipped and logged; the manager starts
// with the rest of the log and the rest of its state.
func TestBadEventRecordDoesNotStopStart(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3})
	c := newClients(h.Conn)
	succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "keep", MemoryBytes: gib}))
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "keep", Transition: acliv1.PowerTransition_kPowerOn}))
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "keep", Transition: acliv1.PowerTransition_kPowerOff}))
	h.Stop()

	ctx := context.Background()
	st, err := bolt.Open(h.Dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := st.List(ctx, "/events/")
	if err != nil || len(kvs) < 2 {
		t.Fatalf("%d event records (%v), want at least 2", len(kvs), err)
	}
	bad := kvs[0].Key
	if _, err := store.Put(ctx, st, bad, []byte{0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var log syncBuffer
	h2 := managertest.New(t, managertest.Options{Dir: h.Dir, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	c = newClients(h2.Conn)
	evs, err := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Events) < len(kvs)-1 {
		t.Fatalf("%d events after restart, want the %d readable ones", len(evs.Events), len(kvs)-1)
	}
	if _, err := c.vm.GetVm(bg, &acliv1.GetVmRequest{Vm: "keep"}); err != nil {
		t.Fatalf("state after restart: %v", err)
	}
	if !strings.Contains(log.String(), "skipping an unreadable event record") || !strings.Contains(log.String(), bad) {
		t.Fatalf("the skipped record is not logged:\n%s", log.String())
	}
}

// A store that holds data but no cluster record is damaged, not new: the
// manager refuses to create a cluster over it and names the file.
func TestStoreWithoutClusterIsRefused(t *testing.T) {
	dir := t.TempDir()
	st, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(context.Background(), st, "/vms/0b9d3a4e-5d1f-4c1a-9a55-1d0f2f0e7a11", []byte{}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	drv, err := sim.New(sim.ForHosts(3), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	m, err := manager.New(manager.Config{Store: st, Driver: drv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		m.Close()
		t.Fatal("a cluster was created over a store holding data")
	}
	if !strings.Contains(err.Error(), st.Path()) || !strings.Contains(err.Error(), "no cluster record") {
		t.Fatalf("error %q does not name the file and the problem", err)
	}
	if kvs, _ := st.List(context.Background(), "/"); len(kvs) != 1 {
		t.Fatalf("%d keys in the store after the refusal, want the 1 it held", len(kvs))
	}
}
