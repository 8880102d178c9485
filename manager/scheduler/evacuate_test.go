package scheduler

import (
	"reflect"
	"strings"
	"testing"
)

func TestEvacuationClassifiesEveryVM(t *testing.T) {
	s := cluster(3, 64).
		addVM("web01", 1, 4, 2).
		addVM("db01", 1, 8, 4, affinity(1)).
		addVM("gpu01", 1, 8, 4, passthrough).
		addVM("ntnx-agent", 1, 1, 1, agent).
		addVM("old", 1, 2, 1, off).
		addVM("elsewhere", 2, 2, 1)

	p := mustPlan(t, s, "host-1", Block)
	if p.OK() {
		t.Fatal("plan OK despite affinity and passthrough VMs")
	}
	want := []string{
		"vm db01 has host affinity to 127.20.0.21 (use non_migratable_vm_action=acpi_shutdown or mode=power_off)",
		"vm gpu01 has a passthrough device and cannot live-migrate (use mode=cold, non_migratable_vm_action=acpi_shutdown or mode=power_off)",
	}
	if len(p.Blockers) != len(want) {
		t.Fatalf("blockers = %v", p.Blockers)
	}
	for i, w := range want {
		if got := p.Blockers[i].String(); got != w {
			t.Errorf("blocker %d = %q, want %q", i, got, w)
		}
	}
	for vm, a := range map[string]Action{"web01": ActionMigrate, "db01": ActionBlocked, "gpu01": ActionBlocked,
		"ntnx-agent": ActionShutdown, "old": ActionNone} {
		if got := stepFor(p, vm).Action; got != a {
			t.Errorf("%s: %v, want %v", vm, got, a)
		}
	}
	if st := stepFor(p, "elsewhere"); st.Action != -1 {
		t.Errorf("VM of another host in the plan: %+v", st)
	}
	if tgt := stepFor(p, "web01").Target.Name; tgt != "h3" {
		t.Errorf("web01 -> %s, want h3 (most free memory)", tgt)
	}

	p = mustPlan(t, s, "host-1", AcpiShutdown)
	if !p.OK() {
		t.Fatalf("acpi_shutdown plan blocked: %v", p.Blockers)
	}
	for _, vm := range []string{"db01", "gpu01", "ntnx-agent"} {
		if got := stepFor(p, vm).Action; got != ActionShutdown {
			t.Errorf("%s: %v, want shutdown", vm, got)
		}
	}
	// Execution order: migrations, then shutdowns, then off VMs.
	var order []Action
	for _, st := range p.Steps {
		if len(order) == 0 || order[len(order)-1] != st.Action {
			order = append(order, st.Action)
		}
	}
	if len(order) != 3 || order[0] != ActionMigrate || order[1] != ActionShutdown || order[2] != ActionNone {
		t.Errorf("step order %v", order)
	}
}

func TestEvacuationAffinityToAnotherHost(t *testing.T) {
	s := cluster(3, 64).addVM("db", 1, 4, 1, affinity(1, 3))
	p := mustPlan(t, s, "host-1", Block)
	if st := stepFor(p, "db"); st.Action != ActionMigrate || st.Target.Name != "h3" {
		t.Fatalf("db: %+v, want migrate to h3 (its other affinity host)", st)
	}
	s.host(3).State = NodeInMaintenance
	p = mustPlan(t, s, "host-1", Block)
	if len(p.Blockers) != 1 || !strings.Contains(p.Blockers[0].Reason, "host affinity to 127.20.0.21, 127.20.0.23") {
		t.Fatalf("blockers = %v", p.Blockers)
	}
}

func TestEvacuationNoCapacityBlocksWithoutOverride(t *testing.T) {
	s := cluster(3, 32).addVM("big", 1, 24, 4).addVM("f2", 2, 16, 1).addVM("f3", 3, 16, 1)
	for _, a := range []NonMigratableAction{Block, AcpiShutdown} {
		p := mustPlan(t, s, "host-1", a)
		if len(p.Blockers) != 1 || p.Blockers[0].Override != "" ||
			!strings.HasPrefix(p.Blockers[0].Reason, "no eligible host for vm big: ") ||
			!strings.Contains(p.Blockers[0].Reason, "h2 (127.20.0.22): insufficient memory (needs 24 GiB, 16 GiB free)") {
			t.Fatalf("action %d: blockers = %v", a, p.Blockers)
		}
		if stepFor(p, "big").Action != ActionBlocked {
			t.Fatalf("big not blocked")
		}
	}
}

func TestEvacuationBalancesLargestFirst(t *testing.T) {
	// Six VMs of 8,7,6,5,4,3 GiB leave h1 for h2..h4 (empty, 64 GiB each).
	s := cluster(4, 64)
	for i, m := range []int64{3, 8, 5, 7, 4, 6} {
		s.addVM(string(rune('a'+i)), 1, m, 1)
	}
	p := mustPlan(t, s, "host-1", Block)
	var got []string
	for _, st := range p.Steps {
		got = append(got, st.VM.Name+"->"+st.Target.Name)
	}
	// Largest first, each onto the host with most free memory (ties: fewest VMs, IP).
	want := "b->h2 d->h3 f->h4 c->h4 e->h3 a->h2"
	if strings.Join(got, " ") != want {
		t.Fatalf("plan %q, want %q", strings.Join(got, " "), want)
	}
}

func TestEvacuationHonoursAntiAffinity(t *testing.T) {
	// Three db VMs on h1; h2..h4 should each get one even though h2 is emptiest.
	s := cluster(4, 64).addVM("x3", 3, 4, 1).addVM("x4", 4, 8, 1)
	for _, n := range []string{"db1", "db2", "db3"} {
		s.addVM(n, 1, 2, 1, groups("db"))
	}
	p := mustPlan(t, s, "host-1", Block)
	seen := map[string]bool{}
	for _, st := range p.Steps {
		if seen[st.Target.Name] {
			t.Fatalf("two db VMs on %s: %+v", st.Target.Name, p.Steps)
		}
		seen[st.Target.Name] = true
		if len(st.Notes) != 0 {
			t.Errorf("unexpected notes %v", st.Notes)
		}
	}
}

func TestEvacuationOfUnknownHost(t *testing.T) {
	if _, err := PlanEvacuation(cluster(2, 8), "nope", Block, Options{}); err == nil {
		t.Fatal("no error for an unknown host")
	}
}

func TestEvacuationDoesNotModifySnapshot(t *testing.T) {
	s := cluster(3, 64).addVM("a", 1, 4, 1).addVM("b", 1, 4, 1)
	before := *s.host(2)
	mustPlan(t, s, "host-1", Block)
	if !reflect.DeepEqual(*s.host(2), before) || s.VMs[0].Host != "host-1" {
		t.Fatal("PlanEvacuation modified its input")
	}
}
