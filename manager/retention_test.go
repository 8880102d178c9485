package manager_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager"
	"github.com/acli-dev/acli/manager/managertest"
	"github.com/acli-dev/acli/manager/store/bolt"
)

func TestOldTasksArePruned(t *testing.T) {
	opts := managertest.Options{Hosts: 3, Manager: func(c *manager.Config) { c.TaskRetention = 10 }}
	h := managertest.New(t, opts)
	c := newClients(h.Conn)
	for i := 0; i < 30; i++ {
		succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: fmt.Sprint("v", i), MemoryBytes: gib}))
	}
	tasks, _ := c.task.ListTasks(bg, &acliv1.ListTasksRequest{IncludeCompleted: true})
	if n := len(tasks.Tasks); n < 10 || n > 11 {
		t.Fatalf("%d tasks retained, want 10-11", n)
	}
	if tasks.Tasks[0].Entities[0].Name != "v29" {
		t.Fatalf("newest task is for %s, want v29", tasks.Tasks[0].Entities[0].Name)
	}
	h.Stop()
	// The store was pruned too (in the background, before the store closed
	// or at the latest at the next start).
	h2 := managertest.New(t, managertest.Options{Dir: h.Dir, Manager: opts.Manager})
	c = newClients(h2.Conn)
	tasks, _ = c.task.ListTasks(bg, &acliv1.ListTasksRequest{IncludeCompleted: true})
	if n := len(tasks.Tasks); n > 11 {
		t.Fatalf("%d tasks after restart", n)
	}
	h2.Stop()
	st, err := bolt.Open(h.Dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		kvs, _ := st.List(context.Background(), "/tasks/")
		if len(kvs) <= 11 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d task records left in the store", len(kvs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGrowingRunningVmNeverOvercommits(t *testing.T) {
	c := start(t, managertest.Options{Hosts: 3})
	createVm(t, c, "a", 200*gib)
	succeed(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "a", Transition: acliv1.PowerTransition_kPowerOn, Host: "h1"}))
	_, err := c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "a", MemoryBytes: proto.Int64(300 * gib)})
	wantCode(t, err, codes.FailedPrecondition, "vm a is on and host h1 has 56 GiB free; growing it by 100 GiB would over-commit memory")
	succeed(t, c)(c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "a", MemoryBytes: proto.Int64(250 * gib)}))
	if h, _ := c.host.GetHost(bg, &acliv1.GetHostRequest{Host: "h1"}); h.MemoryUsedBytes != 250*gib {
		t.Fatalf("h1 uses %d", h.MemoryUsedBytes)
	}
	_, err = c.vm.UpdateVm(bg, &acliv1.UpdateVmRequest{Vm: "a"})
	wantCode(t, err, codes.InvalidArgument, "nothing to update")
}
