package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Exact output of the small things an operator meets first: version,
// completion set-up, error hints.
func TestFormOneShot(t *testing.T) {
	addr := startClusterd(t)
	version := regexp.MustCompile(`^acli \S+( \(commit [0-9a-f]+, \S+(, modified)?\))? go1\.\d+\S*\n$`)
	for _, args := range [][]string{{"--version"}, {"version"}} {
		r := acli(t, addr, "", args...)
		if r.code != 0 || !version.MatchString(r.out) || r.err != "" {
			t.Errorf("acli %v: %+v", args, r)
		}
	}
	for _, s := range []struct {
		args     []string
		in       string
		code     int
		out, err string
	}{
		{[]string{"completion"}, "", 2, "", "Error: completion: name one shell: bash, zsh or fish (e.g. acli completion bash)\n"},
		{[]string{"completion", "tcsh"}, "", 2, "", "Error: completion: unknown shell \"tcsh\"; did you mean \"bash\", \"zsh\" or \"fish\"?\n"},
		{[]string{"vm.get", "web01", "extra=1"}, "", 2, "", "Error: vm.get: unknown key \"extra\" (vm.get takes no key=value arguments; see: acli help vm.get)\n"},
		// Lines read by the shell name commands as typed there.
		{nil, "vm.get web01 extra=1\n", 2, "", "Error: vm.get: unknown key \"extra\" (vm.get takes no key=value arguments; see: help vm.get)\nacli: stopped at line 1: vm.get web01 extra=1\n"},
		{nil, "vm.lst\n", 2, "", "Error: unknown action \"lst\" in namespace vm; did you mean \"vm.list\"?\nacli: stopped at line 1: vm.lst\n"},
	} {
		r := acli(t, addr, s.in, s.args...)
		if r.code != s.code || r.out != s.out || r.err != s.err {
			t.Errorf("acli %v <<< %q: exit %d\nstdout %q\nstderr %q\nwant exit %d stderr %q", s.args, s.in, r.code, r.out, r.err, s.code, s.err)
		}
	}
	r := acli(t, addr, "", "help", "completion")
	if r.code != 0 || !strings.HasPrefix(r.out, "completion: Print a shell completion script\n") {
		t.Errorf("help completion: %+v", r)
	}
}

// The bash script completes in a bash without the bash-completion package.
func TestTmuxBashCompletionWithoutBashCompletion(t *testing.T) {
	addr := startClusterd(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	body := fmt.Sprintf("#!/bin/sh\nexec env -i HOME=%s PATH=%s:/usr/bin:/bin ACLI_SERVER=%s TERM=xterm PS1='$ ' bash --norc --noprofile\n", dir, binDir, addr)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	tm := newTmux(t, 120, 20, script)
	tm.waitFor("$")
	tm.typeText("source <(acli completion bash); declare -F _init_completion || echo no-bash-completion\n")
	tm.waitFor("no-bash-completion")
	tm.typeText("acli vm.list power_state=kOf")
	tm.keys("Tab")
	sc := tm.waitFor("$ acli vm.list power_state=kOff")
	if strings.Contains(sc, "command not found") {
		t.Fatalf("screen:\n%s", sc)
	}
	tm.keys("C-u")
	tm.typeText("acli vm.cr")
	tm.keys("Tab")
	sc = tm.waitFor("$ acli vm.create")
	if got := screenLines(t, sc, "$ acli vm.create", 1); got != "$ acli vm.create" {
		t.Fatalf("screen:\n%s", sc)
	}
}
