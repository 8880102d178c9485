package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// acli talks to clusterd only through the API: nothing under manager/ is
// linked into it (an import would drag the manager's packages, and their
// start-up work, into every acli run).
func TestAcliLinksNothingOfTheManager(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/acli-dev/acli/client") {
		t.Fatalf("go list -deps does not list the client package; it listed %d packages", len(deps))
	}
	for _, p := range deps {
		if p == "github.com/acli-dev/acli/manager" || strings.HasPrefix(p, "github.com/acli-dev/acli/manager/") {
			t.Errorf("acli links %s", p)
		}
	}
}
