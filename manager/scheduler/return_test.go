package scheduler

import (
	"strings"
	"testing"
)

func TestPlanReturnAfterMaintenance(t *testing.T) {
	// h1 was evacuated: web and db went to h2, the agent VM and pinned were
	// shut down. h1 is back in service with 16 GiB.
	s := cluster(2, 16).
		addVM("web", 2, 4, 1).
		addVM("db", 2, 8, 1).
		addVM("ntnx", 1, 1, 1, agent, off).
		addVM("pinned", 1, 3, 1, affinity(1), off).
		addVM("gpu", 2, 1, 1, passthrough)
	p, err := PlanReturn(s, "host-1", []string{"vm-web", "vm-db", "vm-ntnx", "vm-pinned", "vm-gpu"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range p.Steps {
		got = append(got, st.VM.Name+":"+st.Action.String())
	}
	// 16 GiB: ntnx 1 + db 8 + web 4 + pinned 3 = 16 fits exactly; gpu cannot live-migrate.
	want := "ntnx:restart db:migrate web:migrate pinned:restart gpu:none"
	if strings.Join(got, " ") != want {
		t.Fatalf("steps %q, want %q", strings.Join(got, " "), want)
	}
	if r := p.Steps[4].Reason; !strings.Contains(r, "passthrough") {
		t.Errorf("gpu reason %q", r)
	}
	// One GiB less and pinned no longer fits.
	s.host(1).MemoryBytes = 15 * gb
	p, _ = PlanReturn(s, "host-1", []string{"vm-web", "vm-db", "vm-ntnx", "vm-pinned"}, Options{})
	last := p.Steps[len(p.Steps)-1]
	if last.VM.Name != "pinned" || last.Action != ActionNone ||
		last.Reason != "vm pinned cannot return to h1 (127.20.0.21): insufficient memory (needs 3 GiB, 2 GiB free)" {
		t.Fatalf("last step %+v", last)
	}
	// A VM already home is a no-op; unknown VMs are an error.
	p, _ = PlanReturn(s, "host-2", []string{"vm-web"}, Options{})
	if len(p.Steps) != 0 {
		t.Fatalf("steps %+v", p.Steps)
	}
	if _, err := PlanReturn(s, "host-1", []string{"vm-nope"}, Options{}); err == nil {
		t.Fatal("unknown VM accepted")
	}
}
