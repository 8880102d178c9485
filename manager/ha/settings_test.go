package ha

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/state/statetest"
	"github.com/acli-dev/acli/manager/tasks/taskstest"
)

// newSettings is the settings service over three 8 GiB hosts (127.42.0.1-3)
// with VMs of 5, 5 and 4 GiB running on them.
func newSettings(t *testing.T) (*Settings, *taskstest.Starter) {
	t.Helper()
	db := statetest.Open(t)
	_, err := db.Update(context.Background(), func(tx *state.Tx) error {
		tx.Put(state.ClusterKey, &acliv1.Cluster{Uuid: "uuid-c", Name: "c", RedundancyFactor: 2}, 0)
		for i, name := range []string{"h1", "h2", "h3"} {
			h := &acliv1.Host{Uuid: "uuid-" + name, Name: name, HypervisorIp: "127.42.0." + string(rune('1'+i)),
				MemoryBytes: 8 << 30, Schedulable: true, NodeState: acliv1.NodeState_AcropolisNormal, CvmState: acliv1.CvmState_kCvmUp}
			tx.Put(state.HostKey(h.Uuid), h, 0)
			mem := int64(5 << 30)
			if i == 2 {
				mem = 4 << 30
			}
			tx.Put(state.VmKey("uuid-v"+name), &acliv1.Vm{Uuid: "uuid-v" + name, Name: "v" + name, MemoryBytes: mem,
				PowerState: acliv1.PowerState_kOn, HostUuid: h.Uuid, HostName: name}, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := taskstest.New(db)
	return &Settings{DB: db, Tasks: ts}, ts
}

func wantCode(t *testing.T, err error, code codes.Code, sub string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), sub) {
		t.Fatalf("got %v, want %s containing %q", err, code, sub)
	}
}

func TestSettingsCommitTheClusterRecord(t *testing.T) {
	s, ts := newSettings(t)
	ctx := context.Background()
	// 14 GiB run on 24: a failure of h1 leaves 5 GiB to restart into 3 + 4
	// GiB free, in no single host: the guarantee is refused at commit.
	_, err := s.UpdateHaConfig(ctx, &acliv1.UpdateHaConfigRequest{ReservationType: acliv1.HaReservationType_kAcropolisHAReserveSegments})
	if err == nil || !strings.Contains(err.Error(), "if host h1 (127.42.0.1) fails, vm vh1 (5120 MiB) fits in the free memory of none") {
		t.Fatalf("guarantee over a full cluster: %v", err)
	}
	if cfg, _ := s.GetHaConfig(ctx, nil); cfg.ReservationType == acliv1.HaReservationType_kAcropolisHAReserveSegments {
		t.Fatal("a refused guarantee was recorded")
	}
	no := false
	if _, err := s.UpdateHaConfig(ctx, &acliv1.UpdateHaConfigRequest{EnableFailover: &no}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := s.GetHaConfig(ctx, nil)
	if cfg.FailoverEnabled {
		t.Fatal("failover still on after enable_failover=false")
	}
	three := int32(3)
	_, err = s.UpdateHaConfig(ctx, &acliv1.UpdateHaConfigRequest{NumHostFailuresToTolerate: &three})
	wantCode(t, err, codes.InvalidArgument, "use 1 to 2 (one less than the 3 hosts)")

	if _, err := s.UpdateAdsConfig(ctx, &acliv1.UpdateAdsConfigRequest{Enable: false}); err != nil {
		t.Fatal(err)
	}
	if ads, _ := s.GetAdsConfig(ctx, nil); ads.Enabled {
		t.Fatal("ADS still on")
	}
	var groups map[string][]string
	s.DB.View(func(tx *state.Tx) { groups = AntiAffinity(tx) })
	if len(groups) != 0 {
		t.Fatalf("anti-affinity with ADS off: %v", groups)
	}

	// Another task holding the cluster refuses the edit.
	other, err := ts.Begin(ctx, "cluster", acliv1.TaskOperation_kHaUpdate, []*acliv1.EntityRef{{Name: "c"}}, "uuid-c")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateAdsConfig(ctx, &acliv1.UpdateAdsConfigRequest{Enable: true})
	wantCode(t, err, codes.Aborted, "cluster c is busy with task task-5 (kHaUpdate)")
	other.Drop()
	want := []string{"kHaUpdate: dropped", "kHaUpdate: HA updated: enable_failover=false", "kHaUpdate: dropped",
		"kAdsUpdate: ADS disabled: placement ignores VM-group anti-affinity", "kHaUpdate: dropped"}
	if got := ts.Ended(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tasks ended:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if h := ts.Held(); len(h) != 0 {
		t.Fatalf("locks left held: %v", h)
	}
}

func TestPowerOnRefusal(t *testing.T) {
	s, _ := newSettings(t)
	ctx := context.Background()
	// Without the guarantee nothing is reserved.
	v := &acliv1.Vm{Uuid: "uuid-new", Name: "new", MemoryBytes: 2 << 30}
	s.DB.View(func(tx *state.Tx) {
		if err := PowerOnRefusal(tx, v, "uuid-h3"); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := s.DB.Update(ctx, func(tx *state.Tx) error {
		tx.Delete(state.VmKey("uuid-vh3"), state.AnyRev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateHaConfig(ctx, &acliv1.UpdateHaConfigRequest{ReservationType: acliv1.HaReservationType_kAcropolisHAReserveSegments}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := s.GetHaConfig(ctx, nil)
	if cfg.ReservedMemoryBytes != 5<<30 {
		t.Fatalf("reserved %d, want 5 GiB", cfg.ReservedMemoryBytes)
	}
	// h3 must keep room for a 5 GiB VM of h1 or h2: 2 GiB there breaks it.
	s.DB.View(func(tx *state.Tx) {
		err := PowerOnRefusal(tx, &acliv1.Vm{Uuid: "uuid-new", Name: "new", MemoryBytes: 4 << 30}, "uuid-h3")
		wantCode(t, err, codes.FailedPrecondition, "vm new cannot power on: the HA reservation")
	})
}
