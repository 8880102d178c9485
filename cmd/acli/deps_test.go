package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The CLI talks to clusterd through the API only: it imports nothing under
// manager/.
func TestCLIImportsNothingOfTheManager(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/acli-dev/acli/manager") {
			t.Errorf("acli imports %s", p)
		}
	}
}
