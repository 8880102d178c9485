package manager_test

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
)

// BenchmarkPowerOnOff measures power-on and power-off tasks end to end
// over gRPC on the sim (speed 1000), from 1 and 16 clients, each with its
// own VM: each task is checked, registered, placed (power-on), started by
// its start commit and waited for until its end is committed.
func BenchmarkPowerOnOff(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			conn, _ := managertest.Start(b, managertest.Options{Hosts: 4})
			c := newClients(conn)
			for i := range clients {
				createVm(b, c, fmt.Sprintf("p%02d", i), gib)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for i := range clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						for _, tr := range []acliv1.PowerTransition{acliv1.PowerTransition_kPowerOn, acliv1.PowerTransition_kPowerOff} {
							if err := ended(c)(power(c, fmt.Sprintf("p%02d", i), tr)); err != nil {
								b.Error(err)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}

// ended returns a function that waits for a task to succeed, without
// failing the caller's goroutine: ended(c)(c.vm.SetPowerState(...)).
func ended(c clients) func(*acliv1.Task, error) error {
	return func(pb *acliv1.Task, err error) error { return end(c, pb, err) }
}

func end(c clients, pb *acliv1.Task, err error) error {
	if err != nil {
		return err
	}
	stream, err := c.task.WatchTask(bg, &acliv1.GetTaskRequest{Uuid: pb.Uuid})
	if err != nil {
		return err
	}
	for {
		got, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		pb = got
	}
	if pb.Status != acliv1.TaskStatus_kSucceeded {
		return fmt.Errorf("task %s %s: %s", pb.Operation, pb.Status, pb.Error)
	}
	return nil
}
