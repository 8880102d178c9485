package maintenance_test

import (
	"context"
	"strings"
	"testing"

	"github.com/acli-dev/acli/manager/maintenance"
	"github.com/acli-dev/acli/manager/scheduler"
)

// The plan goes to the task log, the drain runs, the VMs still arriving
// land, and what cannot leave is listed (and logged) for the caller.
func TestEnter(t *testing.T) {
	f := &fakeHost{on: []string{"a", "b"}, outcome: map[string][]maintenance.Result{"b": {maintenance.Failed, maintenance.Failed}}}
	var log []string
	arrivals := 0
	e := &maintenance.Enter{
		Drain: drainOf(f),
		Label: "h1 (127.42.0.1)",
		Log:   func(line string) { log = append(log, line) },
		AwaitArrivals: func(context.Context) error {
			arrivals++
			f.mu.Lock()
			f.on = append(f.on, "late") // powered on there just before the host closed
			f.mu.Unlock()
			return nil
		},
		Plan: func() (*scheduler.Plan, error) { return f.plan(), nil },
	}
	plan := f.plan()
	plan.Steps[0].Target = scheduler.HostRef{Name: "h2"}
	plan.Steps[1].Target = scheduler.HostRef{Name: "h3"}
	left, err := e.Run(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if arrivals != 1 || len(left) != 2 || left[0].String() != "b cannot move" || left[1].String() != "vm late is still running on h1 (127.42.0.1)" {
		t.Fatalf("arrivals %d, left %v", arrivals, left)
	}
	want := "plan: migrate vm a to h2\nplan: migrate vm b to h3\nblocked: b cannot move\nblocked: vm late is still running on h1 (127.42.0.1)"
	if got := strings.Join(log, "\n"); got != want {
		t.Fatalf("log:\n%s\nwant:\n%s", got, want)
	}
}

// Cancelled: ctx's error, nothing listed.
func TestEnterCancelled(t *testing.T) {
	f := &fakeHost{on: []string{"a"}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e := &maintenance.Enter{Drain: drainOf(f), Log: func(string) {},
		AwaitArrivals: func(context.Context) error { t.Fatal("waited after the cancel"); return nil },
		Plan:          func() (*scheduler.Plan, error) { return f.plan(), nil }}
	if left, err := e.Run(ctx, f.plan()); err != context.Canceled || left != nil {
		t.Fatalf("left %v err %v", left, err)
	}
}

// drainOf is f's drain, built in place (a Drain holds a lock: never copied).
func drainOf(f *fakeHost) maintenance.Drain {
	d := f.drain(1)
	return maintenance.Drain{Limit: d.Limit, Replan: d.Replan, Migrate: d.Migrate, Shutdown: d.Shutdown}
}
