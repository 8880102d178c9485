package scheduler

import (
	"errors"
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

func TestRedundancy(t *testing.T) {
	s := cluster(4, 8)
	if err := CheckRedundancy(2, s.Hosts, "host-1"); err != nil {
		t.Fatalf("nothing out: %v", err)
	}
	s.host(2).State = NodeInMaintenance
	err := CheckRedundancy(2, s.Hosts, "host-1")
	var re *RedundancyError
	if !errors.As(err, &re) || len(re.Out) != 1 || re.Out[0].Host.Name != "h2" {
		t.Fatalf("err = %v", err)
	}
	if err.Error() != "redundancy factor 2 allows 1 host out at a time and h2 (127.20.0.22) [EnteredMaintenanceMode] is already out" {
		t.Errorf("message %q", err)
	}
	// The host already out may change how it is out.
	if err := CheckRedundancy(2, s.Hosts, "host-2"); err != nil {
		t.Errorf("host already out: %v", err)
	}
	// RF3 allows a second host; the third is refused, naming both.
	if err := CheckRedundancy(3, s.Hosts, "host-1"); err != nil {
		t.Errorf("RF3 second host: %v", err)
	}
	s.host(3).CVM = CVMMaintenance
	err = CheckRedundancy(3, s.Hosts, "host-1")
	if !errors.As(err, &re) || len(re.Out) != 2 || !strings.Contains(err.Error(), "h3 (127.20.0.23) [kCvmMaintenance] are already out") {
		t.Fatalf("RF3 third host: %v", err)
	}
	// Down and entering count too.
	s = cluster(3, 8)
	s.host(1).State = NodeDown
	if CheckRedundancy(2, s.Hosts, "host-2") == nil {
		t.Error("down host not counted")
	}
	s.host(1).State = NodeEnteringMaintenance
	if CheckRedundancy(2, s.Hosts, "host-2") == nil {
		t.Error("entering host not counted")
	}
	if err := CheckRedundancy(1, cluster(2, 8).Hosts, "host-1"); err == nil {
		t.Error("RF1 allowed a host out")
	}
	if err := CheckRedundancy(0, s.Hosts, "host-1"); err == nil {
		t.Error("RF0 accepted")
	}
	if err := CheckRedundancy(2, cluster(2, 8).Hosts, "ghost"); err == nil {
		t.Error("unknown host accepted")
	}
}
