package manager_test

import (
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/auth"
	"github.com/acli-dev/acli/manager/managertest"
)

// TestTasksRecordWhoStartedThem: a task and its events name the caller that
// started it; a task clusterd starts itself (an HA restart) names clusterd.
func TestTasksRecordWhoStartedThem(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3, Auth: auth.New(auth.Config{Anonymous: auth.Admin})})
	c := newClients(h.Conn)
	created := succeed(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "web", MemoryBytes: gib}))
	vmOn(t, c, "db", gib, "h2")
	if _, err := c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: "h2"}); err != nil {
		t.Fatal(err)
	}
	ha := haTask(t, c, "h2")

	for _, tc := range []struct {
		task *acliv1.Task
		want string
	}{{created, "anonymous"}, {ha, "clusterd"}} {
		got, err := c.task.GetTask(bg, &acliv1.GetTaskRequest{Uuid: tc.task.Uuid})
		if err != nil {
			t.Fatal(err)
		}
		if got.Principal != tc.want {
			t.Errorf("%s task started by %q, want %q", got.Operation, got.Principal, tc.want)
		}
	}
	evs, err := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, e := range evs.Events {
		if e.TaskUuid != "" {
			seen[e.TaskUuid] = e.Principal
		}
	}
	if seen[created.Uuid] != "anonymous" || seen[ha.Uuid] != "clusterd" {
		t.Errorf("events name %q for the create and %q for HA; want anonymous and clusterd", seen[created.Uuid], seen[ha.Uuid])
	}
}
