package manager_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

// BenchmarkVgFailoverEndToEnd fails and recovers one CVM of 16 serving
// external sessions, through the API: each iteration is a failover and a
// failback, both planned, committed to the store and published. It reports
// the time of the failover alone and the spread of sessions over the 15
// CVMs left during it.
func BenchmarkVgFailoverEndToEnd(b *testing.B) {
	for _, size := range []struct{ vgs, disks, initiators int }{{10, 10, 10}, {10, 20, 50}} {
		n := size.vgs * size.disks * size.initiators
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			h := managertest.New(b, managertest.Options{Hosts: 16})
			vg := acliv1.NewVolumeGroupServiceClient(h.Conn)
			for i := range size.vgs {
				name := fmt.Sprintf("vg%02d", i)
				if _, err := vg.CreateVolumeGroup(bg, &acliv1.CreateVolumeGroupRequest{Name: name}); err != nil {
					b.Fatal(err)
				}
				for range size.disks {
					if _, err := vg.CreateVgDisk(bg, &acliv1.CreateVgDiskRequest{VolumeGroup: name, SizeBytes: gib}); err != nil {
						b.Fatal(err)
					}
				}
				for j := range size.initiators {
					ini := fmt.Sprintf("iqn.2024-01.com.example:host%d", j)
					if _, err := vg.AttachExternal(bg, &acliv1.AttachExternalRequest{VolumeGroup: name, InitiatorName: ini}); err != nil {
						b.Fatal(err)
					}
				}
			}
			c := newClients(h.Conn)
			waitMoved := func() {
				deadline := time.Now().Add(time.Minute)
				for h.Manager.CheckIscsi(true) != nil {
					if time.Now().After(deadline) {
						b.Fatal(h.Manager.CheckIscsi(true))
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
			var spread []float64
			var failover time.Duration
			lo, hi := n, 0
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := c.sim.FailCvm(bg, &acliv1.SimHostRequest{Host: "127.20.0.21"}); err != nil {
					b.Fatal(err)
				}
				waitMoved()
				failover += time.Since(start)
				b.StopTimer()
				all, _ := vg.ListSessions(bg, &acliv1.ListSessionsRequest{})
				counts := cvmCounts(all.Sessions)
				var loads []int
				for _, k := range counts {
					loads = append(loads, k)
				}
				spread = append(spread, float64(slices.Max(loads)-slices.Min(loads)))
				lo, hi = min(lo, slices.Min(loads)), max(hi, slices.Max(loads))
				b.StartTimer()
				if _, err := c.sim.RecoverCvm(bg, &acliv1.SimHostRequest{Host: "127.20.0.21"}); err != nil {
					b.Fatal(err)
				}
				waitMoved()
			}
			b.StopTimer()
			b.ReportMetric(slices.Max(spread), "max-min-sessions/cvm")
			b.ReportMetric(float64(hi), "max-sessions/cvm")
			b.ReportMetric(float64(lo), "min-sessions/cvm")
			b.ReportMetric(float64(failover.Microseconds())/1000/float64(b.N), "failover-ms/op")
		})
	}
}
