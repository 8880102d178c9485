package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/acli-dev/acli/commands"
)

// TestDocsUpToDate fails when docs/ differs from what the registry
// generates: run `make docs` after changing a command.
func TestDocsUpToDate(t *testing.T) {
	root := filepath.Join("..", "..", "docs")
	src, err := os.ReadFile(filepath.Join(root, "clusterd.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := generate(commands.Default(), string(src))
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

// The README and the guides link only to files inside the repository.
func TestDocLinksStayInTheRepository(t *testing.T) {
	root := filepath.Join("..", "..")
	link := regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`)
	for _, page := range []string{"README.md", "docs/architecture.md", "docs/clusterd.md", "docs/reference/README.md"} {
		b, err := os.ReadFile(filepath.Join(root, page))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			p := filepath.Join(root, filepath.Dir(page), target)
			rel, err := filepath.Rel(root, p)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links outside the repository: %s", page, target)
				continue
			}
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s links to a missing file: %s", page, target)
			}
		}
	}
}
