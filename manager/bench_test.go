package manager_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
)

// createMany creates n VMs over gRPC from `clients` goroutines and returns
// the elapsed time.
func createMany(b *testing.B, vms acliv1.VmServiceClient, n, clients int, prefix string) time.Duration {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				t, err := vms.CreateVm(context.Background(), &acliv1.CreateVmRequest{
					Name: fmt.Sprintf("%s%06d", prefix, i), MemoryBytes: 2 << 30, NumVcpus: 2,
				})
				if err != nil || t.Status != acliv1.TaskStatus_kSucceeded {
					b.Errorf("create: %v %v", t, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkCreateVm measures vm.create tasks/s end to end over gRPC with a
// durable (fsync) bbolt store: each create is one committed transaction
// holding the VM and its task; concurrent creates share fsyncs.
func BenchmarkCreateVm(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			conn, _ := managertest.Start(b, managertest.Options{Hosts: 3, Sync: true})
			vms := acliv1.NewVmServiceClient(conn)
			b.ResetTimer()
			el := createMany(b, vms, b.N, clients, "bench")
			b.ReportMetric(float64(b.N)/el.Seconds(), "tasks/s")
		})
	}
}

// BenchmarkListVms10k measures ListVms over gRPC with 10,000 VMs.
func BenchmarkListVms10k(b *testing.B) {
	conn, _ := managertest.Start(b, managertest.Options{Hosts: 16})
	vms := acliv1.NewVmServiceClient(conn)
	createMany(b, vms, 10000, 16, "vm")
	b.ResetTimer()
	for b.Loop() {
		resp, err := vms.ListVms(context.Background(), &acliv1.ListVmsRequest{})
		if err != nil || len(resp.Vms) != 10000 {
			b.Fatalf("ListVms: %d VMs, %v", len(resp.GetVms()), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
}

// BenchmarkMemory1000Hosts50kVms reports the process heap and RSS with a
// 1,000-host cluster holding 50,000 VMs, 10,000 of them running.
func BenchmarkMemory1000Hosts50kVms(b *testing.B) {
	for b.Loop() {
		cfg := sim.ForHosts(1000)
		conn, _ := managertest.Start(b, managertest.Options{Sim: &cfg, Speed: 1e6})
		vms := acliv1.NewVmServiceClient(conn)
		createMany(b, vms, 50000, 16, "vm")
		list, _ := vms.ListVms(context.Background(), &acliv1.ListVmsRequest{})
		var wg sync.WaitGroup
		var next atomic.Int64
		for c := 0; c < 16; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1); i <= 10000; i = next.Add(1) {
					if _, err := vms.SetPowerState(context.Background(), &acliv1.SetPowerStateRequest{
						Vm: list.Vms[i-1].Uuid, Transition: acliv1.PowerTransition_kPowerOn,
					}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		list = nil
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
		b.ReportMetric(rssMB(), "rss-MB")
	}
}

func rssMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkEnterMaintenance50Vms measures host.enter_maintenance_mode end
// to end (plan, 50 live migrations at most 2 at a time, records, task)
// of a host running 50 VMs, at a sim speed where the simulated time of
// each migration is negligible; exit_maintenance_mode brings them back
// between iterations (not timed).
func BenchmarkEnterMaintenance50Vms(b *testing.B) {
	cfg := sim.ForHosts(4)
	h := managertest.New(b, managertest.Options{Sim: &cfg, Speed: 1e6})
	hosts := acliv1.NewHostServiceClient(h.Conn)
	vms := acliv1.NewVmServiceClient(h.Conn)
	tasks := acliv1.NewTaskServiceClient(h.Conn)
	ctx := context.Background()
	waitTask := func(t *acliv1.Task, err error) {
		if err != nil {
			b.Fatal(err)
		}
		s, err := tasks.WatchTask(ctx, &acliv1.GetTaskRequest{Uuid: t.Uuid})
		if err != nil {
			b.Fatal(err)
		}
		var last *acliv1.Task
		for {
			got, err := s.Recv()
			if err != nil {
				break
			}
			last = got
		}
		if last.GetStatus() != acliv1.TaskStatus_kSucceeded {
			b.Fatalf("task %s: %s", last.GetOperation(), last.GetError())
		}
	}
	for i := 0; i < 50; i++ {
		t, err := vms.CreateVm(ctx, &acliv1.CreateVmRequest{Name: fmt.Sprintf("m%02d", i), MemoryBytes: 4 << 30, NumVcpus: 2})
		if err != nil {
			b.Fatal(err)
		}
		waitTask(vms.SetPowerState(ctx, &acliv1.SetPowerStateRequest{Vm: t.Entities[0].Uuid, Transition: acliv1.PowerTransition_kPowerOn, Host: "h1"}))
	}
	var spread float64
	b.ResetTimer()
	for b.Loop() {
		waitTask(hosts.EnterMaintenanceMode(ctx, &acliv1.EnterMaintenanceModeRequest{Host: "h1"}))
		b.StopTimer()
		list, _ := hosts.ListHosts(ctx, &acliv1.ListHostsRequest{})
		lo, hi := int64(1<<62), int64(0)
		for _, hh := range list.Hosts[1:] {
			free := hh.MemoryBytes - hh.MemoryUsedBytes
			lo, hi = min(lo, free), max(hi, free)
		}
		spread = float64(hi-lo) / (1 << 30)
		waitTask(hosts.ExitMaintenanceMode(ctx, &acliv1.ExitMaintenanceModeRequest{Host: "h1"}))
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/enter")
	b.ReportMetric(spread, "free-GiB-spread")
}
