package migrate_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/migrate"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/tasks"
)

// hostsDB is a state DB with hosts h1..hn in service.
func hostsDB(t *testing.T, n int) *state.DB {
	t.Helper()
	db := statetest.Open(t)
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Uuid: "uuid-c", Name: "c", RedundancyFactor: 2}, 0)
		for i := 1; i <= n; i++ {
			tx.Put(state.HostKey(fmt.Sprintf("h%d", i)), &acliv1.Host{Uuid: fmt.Sprintf("h%d", i), Name: fmt.Sprintf("h%d", i),
				HypervisorIp: fmt.Sprintf("127.43.0.%d", i), MemoryBytes: 8 << 30, Schedulable: true,
				NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp}, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// closeHost commits a change that makes host take no VMs.
func closeHost(t *testing.T, db *state.DB, host string, edit func(h *acliv1.Host)) {
	t.Helper()
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		if edit == nil {
			tx.Delete(state.HostKey(host), tx.Rev(state.HostKey(host)))
			return nil
		}
		h := proto.Clone(tx.Host(host)).(*acliv1.Host)
		edit(h)
		tx.Put(state.HostKey(host), h, tx.Rev(state.HostKey(host)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// cancelled is a context that is already done: a wait under it answers
// at once whether it would block.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestStartLivePacesEachHost(t *testing.T) {
	m := migrate.NewMoves(hostsDB(t, 3), 1)
	end, err := m.StartLive(context.Background(), "h1", "h2")
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{"h3", "h2"}, {"h1", "h3"}, {"h2", "h3"}} {
		if _, err := m.StartLive(cancelled(), pair[0], pair[1]); err != context.Canceled {
			t.Fatalf("%s -> %s with h1 -> h2 running at limit 1: err %v, want it to wait", pair[0], pair[1], err)
		}
	}
	end()
	end2, err := m.StartLive(cancelled(), "h3", "h2")
	if err != nil {
		t.Fatalf("slots free again: %v", err)
	}
	end2()
}

// Issue 12 defect 4: a migration waiting for its slots toward a host that
// is cordoned, goes down, enters maintenance or leaves meanwhile does not
// start, and holds nothing.
func TestClosedTargetStopsAWaitingMigration(t *testing.T) {
	for name, edit := range map[string]func(*acliv1.Host){
		"cordoned":    func(h *acliv1.Host) { h.Schedulable, h.SchedulableReason = false, "cordoned" },
		"down":        func(h *acliv1.Host) { h.NodeState = acliv1.NodeState_kNodeDown },
		"maintenance": func(h *acliv1.Host) { h.NodeState = acliv1.NodeState_EnteringMaintenanceMode },
		"removed":     nil,
	} {
		t.Run(name, func(t *testing.T) {
			db := hostsDB(t, 3)
			m := migrate.NewMoves(db, 1)
			first, err := m.StartLive(context.Background(), "h1", "h2")
			if err != nil {
				t.Fatal(err)
			}
			waiting := make(chan error, 1)
			go func() {
				end, err := m.StartLive(context.Background(), "h3", "h2")
				if end != nil {
					end()
				}
				waiting <- err
			}()
			closeHost(t, db, "h2", edit)
			first()
			if err := <-waiting; !migrate.TargetGone(err) {
				t.Fatalf("err %v, want the target refused", err)
			}
			if err := m.AwaitArrivals(cancelled(), "h2"); err != nil {
				t.Fatalf("the refused migration still counts as arriving: %v", err)
			}
			end, err := m.StartLive(cancelled(), "h3", "h1")
			if err != nil {
				t.Fatalf("the refused migration kept h3's slot: %v", err)
			}
			end()
		})
	}
}

func TestArrive(t *testing.T) {
	db := hostsDB(t, 2)
	m := migrate.NewMoves(db, 2)
	end, err := m.Arrive("h1")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AwaitArrivals(cancelled(), "h1"); err != context.Canceled {
		t.Fatalf("AwaitArrivals with a VM arriving: %v", err)
	}
	if err := m.AwaitArrivals(cancelled(), "h2"); err != nil {
		t.Fatalf("AwaitArrivals of another host: %v", err)
	}
	end()
	end() // a second end changes nothing
	if err := m.AwaitArrivals(cancelled(), "h1"); err != nil {
		t.Fatalf("after the arrival ended: %v", err)
	}
	other := m.Arriving("h1")
	end()
	if err := m.AwaitArrivals(cancelled(), "h1"); err != context.Canceled {
		t.Fatalf("an ended arrival ended another: %v", err)
	}
	other()

	closeHost(t, db, "h2", func(h *acliv1.Host) { h.NodeState = acliv1.NodeState_EnteredMaintenanceMode })
	if _, err := m.Arrive("h2"); !migrate.TargetGone(err) || err.Error() != "target h2 (127.43.0.2) can no longer take it: host is in maintenance mode" {
		t.Fatalf("err %v", err)
	}
	if _, err := m.Arrive("h9"); !migrate.TargetGone(err) || err.Error() != "target h9 can no longer take it: it left the cluster" {
		t.Fatalf("err %v", err)
	}
	if err := m.AwaitArrivals(cancelled(), "h2"); err != nil {
		t.Fatalf("a refused arrival counts: %v", err)
	}
}

// An evacuation records its host EnteringMaintenanceMode, then waits for
// the arrivals; a step toward the host counts itself, then checks the
// host. Whatever the interleaving, a step that was let through is waited
// for: no VM lands on a host whose evacuation is over.
func TestNoArrivalMissesAnEvacuation(t *testing.T) {
	for i := range 50 {
		db := hostsDB(t, 1)
		m := migrate.NewMoves(db, 2)
		var evacuated atomic.Bool
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			end, err := m.Arrive("h1")
			if err != nil {
				return
			}
			if evacuated.Load() {
				t.Errorf("run %d: a VM was let through toward h1 after its evacuation ended", i)
			}
			end()
		}()
		go func() {
			defer wg.Done()
			closeHost(t, db, "h1", func(h *acliv1.Host) { h.NodeState = acliv1.NodeState_EnteringMaintenanceMode })
			if err := m.AwaitArrivals(context.Background(), "h1"); err != nil {
				t.Error(err)
			}
			evacuated.Store(true)
		}()
		wg.Wait()
	}
}

func TestTargets(t *testing.T) {
	m := migrate.NewMoves(hostsDB(t, 2), 2)
	a, b := tasks.New(&acliv1.Task{Uuid: "a"}), tasks.New(&acliv1.Task{Uuid: "b"})
	m.AddTarget("h1", a)
	m.AddTarget("h2", a)
	m.AddTarget("h1", b)
	if got := m.Targets("h1"); len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("targets of h1: %v", got)
	}
	m.DropTargets(a)
	if got := m.Targets("h1"); len(got) != 1 || got[0] != b {
		t.Fatalf("targets of h1 after a ended: %v", got)
	}
	if got := m.Targets("h2"); len(got) != 0 {
		t.Fatalf("targets of h2 after a ended: %v", got)
	}
}

// BenchmarkArriveParallel is the cost a power-on, restart or move pays to
// count itself toward a host and check it, with every goroutine arriving
// at once on 16 hosts.
func BenchmarkArriveParallel(b *testing.B) {
	db := statetest.Open(b)
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		for i := 1; i <= 16; i++ {
			tx.Put(state.HostKey(fmt.Sprintf("h%d", i)), &acliv1.Host{Uuid: fmt.Sprintf("h%d", i), Name: fmt.Sprintf("h%d", i),
				HypervisorIp: fmt.Sprintf("127.43.0.%d", i), MemoryBytes: 8 << 30, Schedulable: true}, 0)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	m := migrate.NewMoves(db, 2)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		host := fmt.Sprintf("h%d", n.Add(1)%16+1)
		for pb.Next() {
			end, err := m.Arrive(host)
			if err != nil {
				b.Fatal(err)
			}
			end()
		}
	})
}
