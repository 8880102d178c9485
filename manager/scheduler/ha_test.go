package scheduler

import (
	"strings"
	"testing"
)

func TestHARestartByPriorityAsCapacityAllows(t *testing.T) {
	// h1 fails with 40 GiB of VMs; h2 has 20 GiB free, h3 none.
	s := cluster(3, 32).
		addVM("low", 1, 8, 1, priority(0)).
		addVM("high", 1, 12, 1, priority(10)).
		addVM("mid", 1, 8, 1, priority(5)).
		addVM("never", 1, 1, 1, priority(-1)).
		addVM("ag", 1, 1, 1, agent, priority(100)).
		addVM("pinned", 1, 1, 1, affinity(1), priority(7)).
		addVM("fill2", 2, 12, 1).addVM("fill3", 3, 32, 1)
	s.host(1).State = NodeDown
	plan, err := PlanHARestart(s, []string{"host-1"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range plan.Restarts {
		got = append(got, r.VM.Name+"->"+r.Target.Name)
	}
	if strings.Join(got, " ") != "high->h2 mid->h2" {
		t.Fatalf("restarts %v", got)
	}
	reasons := map[string]string{}
	for _, n := range plan.NotRestarted {
		reasons[n.VM.Name] = n.Reason
	}
	for vm, want := range map[string]string{
		"never":  "HA priority -1: never restarted",
		"ag":     "agent VM stays with its host",
		"pinned": "not in the VM's host affinity",
		"low":    "insufficient memory",
	} {
		if !strings.Contains(reasons[vm], want) {
			t.Errorf("%s: reason %q, want %q", vm, reasons[vm], want)
		}
	}
	if len(plan.NotRestarted) != 4 {
		t.Errorf("not restarted: %v", plan.NotRestarted)
	}
}

func TestHARestartNeverTargetsFailedHosts(t *testing.T) {
	// The snapshot still shows h2 as normal (the manager has not caught up):
	// naming it failed must keep VMs off it.
	s := cluster(3, 64).addVM("a", 1, 4, 1).addVM("b", 2, 4, 1).addVM("fill", 3, 61, 1)
	plan, err := PlanHARestart(s, []string{"host-1", "host-2"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Restarts) != 0 || len(plan.NotRestarted) != 2 {
		t.Fatalf("plan %+v", plan)
	}
	if _, err := PlanHARestart(s, []string{"ghost"}, Options{}); err == nil {
		t.Fatal("unknown failed host accepted")
	}
}
