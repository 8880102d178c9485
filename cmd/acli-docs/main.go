// Command acli-docs writes the command reference from the registry:
// docs/reference/<command>.md (markdown) and docs/man/*.1 (man pages),
// hostssh and allssh included.
//
//	go run ./cmd/acli-docs -out docs
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/acli-dev/acli/commands"
	"github.com/cpuguy83/go-md2man/v2/md2man"
)

func main() {
	out := flag.String("out", "docs", "output directory (reference/ and man/ are replaced)")
	flag.Parse()
	if err := write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "acli-docs:", err)
		os.Exit(1)
	}
}

// generate returns every generated file by path relative to the docs dir.
func generate(reg *commands.Registry) map[string][]byte {
	files := map[string][]byte{}
	var index strings.Builder
	index.WriteString("# acli command reference\n\nGenerated from the command registry by `make docs`; do not edit.\n")
	for _, ns := range reg.Namespaces {
		fmt.Fprintf(&index, "\n## %s: %s\n\n", ns.Name, ns.Summary)
		for _, c := range reg.InNamespace(ns.Name) {
			fmt.Fprintf(&index, "- [%s](%s.md): %s\n", c.Name, c.Name, c.Summary)
			md := commands.Markdown(c)
			files[filepath.Join("reference", c.Name+".md")] = []byte(md)
			files[filepath.Join("man", "acli-"+c.Name+".1")] = man("acli-"+c.Name, c.Summary, md)
		}
	}
	index.WriteString("\n## SSH fan-out\n\n")
	for _, fc := range commands.FanoutCommands {
		fmt.Fprintf(&index, "- [%s](%s.md): %s\n", fc.Name, fc.Name, fc.Summary)
		md := "# " + fc.Name + "\n\n```\n" + commands.FanoutHelp(fc) + "```\n"
		files[filepath.Join("reference", fc.Name+".md")] = []byte(md)
		files[filepath.Join("man", fc.Name+".1")] = man(fc.Name, fc.Summary, md)
	}
	files[filepath.Join("reference", "README.md")] = []byte(index.String())
	files[filepath.Join("man", "acli.1")] = man("acli", "manage hyperconverged KVM clusters",
		"# acli\n\n```\n"+commands.RootHelp(reg)+"```\n\nSee acli-<command>(1) for each command, e.g. acli-vm.create(1).\n")
	return files
}

// man renders a markdown page as roff with a NAME section.
func man(name, summary, md string) []byte {
	// Drop the page's own "# title" line: the man header replaces it.
	if strings.HasPrefix(md, "# ") {
		if i := strings.IndexByte(md, '\n'); i >= 0 {
			md = md[i+1:]
		}
	}
	doc := fmt.Sprintf("%% %s 1 \"\" \"acli\" \"acli manual\"\n\n# NAME\n\n%s - %s\n\n# DESCRIPTION\n%s", strings.ToUpper(name), name, summary, md)
	return md2man.Render([]byte(doc))
}

func write(dir string) error {
	files := generate(commands.Default())
	for _, sub := range []string{"reference", "man"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	for p, b := range files {
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
