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
	"slices"
	"strings"

	"github.com/acli-dev/acli/commands"
	"github.com/acli-dev/acli/manager/auth"
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

// generate returns every generated file by path relative to the docs dir;
// clusterdMD is docs/clusterd.md, the source of clusterd(1).
func generate(reg *commands.Registry, clusterdMD string) map[string][]byte {
	files := map[string][]byte{}
	var index strings.Builder
	index.WriteString("# acli command reference\n\nGenerated from the command registry by `make docs`; do not edit.\n")
	for _, ns := range reg.Namespaces {
		fmt.Fprintf(&index, "\n## %s: %s\n\n", ns.Name, ns.Summary)
		var siblings []string
		for _, c := range reg.InNamespace(ns.Name) {
			siblings = append(siblings, "acli-"+c.Name+"(1)")
		}
		for _, c := range reg.InNamespace(ns.Name) {
			fmt.Fprintf(&index, "- [%s](%s.md): %s\n", c.Name, c.Name, c.Summary)
			md := commands.Markdown(c)
			files[filepath.Join("reference", c.Name+".md")] = []byte(md)
			see := append([]string{"acli(1)"}, slices.DeleteFunc(slices.Clone(siblings), func(s string) bool { return s == "acli-"+c.Name+"(1)" })...)
			files[filepath.Join("man", "acli-"+c.Name+".1")] = man("acli-"+c.Name, c.Summary, "acli [global flags] "+c.Usage(), md, see)
		}
	}
	index.WriteString("\n## SSH fan-out\n\n")
	for _, fc := range commands.FanoutCommands {
		fmt.Fprintf(&index, "- [%s](%s.md): %s\n", fc.Name, fc.Name, fc.Summary)
		md := "# " + fc.Name + "\n\n```\n" + commands.FanoutHelp(fc) + "```\n"
		files[filepath.Join("reference", fc.Name+".md")] = []byte(md)
		files[filepath.Join("man", fc.Name+".1")] = man(fc.Name, fc.Summary, fc.Name+" [flags] COMMAND", md, []string{"acli(1)", "ssh(1)", "ssh_config(5)"})
	}
	index.WriteString("\n## The manager\n\n- [clusterd](../clusterd.md): flags, the --sim-config format, signals, files\n")
	index.WriteString("\n## Security\n\n- [roles](roles.md): the role every RPC needs\n")
	files[filepath.Join("reference", "roles.md")] = []byte(auth.RolesMarkdown())
	files[filepath.Join("reference", "README.md")] = []byte(index.String())
	files[filepath.Join("man", "acli.1")] = man("acli", "manage hyperconverged KVM clusters",
		"acli [global flags] NAMESPACE.ACTION [ARG...] [KEY=VALUE...]\nacli [global flags]\nacli [global flags] FILE | -\nacli completion bash|zsh|fish\nacli --version",
		"# acli\n\n```\n"+commands.RootHelp(reg)+"```\n\nWith no command on a terminal acli opens its shell (the <acropolis> prompt); with standard input not a terminal, or with a FILE (- for standard input), it runs one command per line and stops at the first failing line with its exit status.\n\nSee acli-<command>(1) for each command, e.g. acli-vm.create(1).\n",
		[]string{"clusterd(1)", "hostssh(1)", "allssh(1)", "acli-vm.create(1)"})
	files[filepath.Join("man", "clusterd.1")] = clusterdMan(clusterdMD)
	return files
}

// exitStatus, environment and files are the same on every acli page.
const (
	exitStatus = "0 ok; 1 the operation failed; 2 usage or bad input; 3 not found; 4 permission denied; " +
		"5 refused by a precondition or a conflict; 6 clusterd unreachable; 7 timed out waiting, or interrupted (the task goes on; task.wait follows it).\n"
	environment = "ACLI_SERVER\n: clusterd address host:port (or a comma list of managers); --server overrides it.\n\n" +
		"ACLI_TOKEN\n: bearer token for clusterd; --token overrides it.\n\n" +
		"ACLI_SSH_IDENTITY\n: private key hostssh and allssh try first.\n\n" +
		"ACLI_HISTORY\n: the shell's history file (empty: keep none).\n"
	filesText = "~/.acli_history\n: the shell's history, one line per command (see ACLI_HISTORY).\n\n" +
		"~/.ssh/known_hosts, ~/.ssh/config\n: host keys and settings hostssh and allssh honour.\n"
)

// man renders a page as roff: NAME, SYNOPSIS, DESCRIPTION (the markdown
// page), EXIT STATUS, ENVIRONMENT, FILES, SEE ALSO.
func man(name, summary, synopsis, md string, seeAlso []string) []byte {
	// Drop the page's own "# title" line: the man header replaces it.
	if strings.HasPrefix(md, "# ") {
		if i := strings.IndexByte(md, '\n'); i >= 0 {
			md = md[i+1:]
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%% %s 1 \"\" \"acli\" \"acli manual\"\n\n# NAME\n\n%s - %s\n\n# SYNOPSIS\n\n", strings.ToUpper(name), name, summary)
	for _, l := range strings.Split(synopsis, "\n") {
		fmt.Fprintf(&sb, "`%s`  \n", l)
	}
	fmt.Fprintf(&sb, "\n# DESCRIPTION\n%s\n# EXIT STATUS\n\n%s\n# ENVIRONMENT\n\n%s\n# FILES\n\n%s\n# SEE ALSO\n\n%s\n",
		md, exitStatus, environment, filesText, strings.Join(seeAlso, ", "))
	return md2man.Render([]byte(sb.String()))
}

// clusterdMan renders docs/clusterd.md as clusterd(1): its title line and
// summary make NAME, its "## Section" headings the man page's sections.
func clusterdMan(md string) []byte {
	title, rest, _ := strings.Cut(md, "\n\n")
	summary, body, _ := strings.Cut(rest, "\n\n")
	name := strings.TrimPrefix(title, "# ")
	var sb strings.Builder
	fmt.Fprintf(&sb, "%% %s 1 \"\" \"acli\" \"acli manual\"\n\n# NAME\n\n%s - %s\n\n", strings.ToUpper(name), name, summary)
	for _, l := range strings.Split(body, "\n") {
		if h, ok := strings.CutPrefix(l, "## "); ok {
			l = "# " + strings.ToUpper(h)
		}
		sb.WriteString(l + "\n")
	}
	return md2man.Render([]byte(sb.String()))
}

func write(dir string) error {
	src, err := os.ReadFile(filepath.Join(dir, "clusterd.md"))
	if err != nil {
		return err
	}
	files := generate(commands.Default(), string(src))
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
