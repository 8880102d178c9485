package main

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/acli-dev/acli/commands"
)

// TestDocsUpToDate fails when docs/ differs from what the registry
// generates: run `make docs` after changing a command.
func TestDocsUpToDate(t *testing.T) {
	files := generate(commands.Default())
	root := filepath.Join("..", "..", "docs")
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || string(got) != string(want) {
			t.Errorf("docs/%s is stale or missing; run make docs", p)
		}
	}
	for _, sub := range []string{"reference", "man"} {
		entries, err := os.ReadDir(filepath.Join(root, sub))
		if err != nil {
			t.Fatalf("docs/%s: %v (run make docs)", sub, err)
		}
		var extra []string
		for _, e := range entries {
			if _, ok := files[filepath.Join(sub, e.Name())]; !ok {
				extra = append(extra, e.Name())
			}
		}
		sort.Strings(extra)
		if len(extra) > 0 {
			t.Errorf("docs/%s has files no command generates: %v; run make docs", sub, extra)
		}
	}
	if len(files) < 2*len(commands.Default().Commands()) {
		t.Fatalf("only %d files generated", len(files))
	}
}
