package simssh

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acli-dev/acli/fanout"
)

// TestShellEscapes tries what would reach the manager's machine through a
// real shell: none of it may run, read or write anything there.
func TestShellEscapes(t *testing.T) {
	s, targets := serve(t, t.TempDir())
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "secret")
	if err := os.WriteFile(secret, []byte("TOPSECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(secretDir, "written")
	for _, tc := range []struct {
		cmd      string
		code     int
		stdout   string
		inStderr string
	}{
		{"cat /etc/shadow", 1, "", "cat: /etc/shadow: not available on a simulated host"},
		{"cat " + secret, 1, "", "not available on a simulated host"},
		{"sh -c 'cat /etc/shadow'", 127, "", "sh: sh: not available on a simulated host"},
		{"/bin/sh", 127, "", "/bin/sh: not available"},
		{"../../../bin/bash -i", 127, "", "not available"},
		{"exec /bin/sh", 127, "", "exec: not available"},
		{"env", 127, "", "env: not available"},
		{"hostname; cat /etc/shadow", 1, "sim-host-1\n", "/etc/shadow: not available"},
		{"hostname;id", 127, "sim-host-1\n", "id: not available"},
		{"hostname && python3 -c 'import os'", 127, "sim-host-1\n", "python3: not available"},
		{"echo $(cat /etc/shadow)", 2, "", "command substitution $(...) is not available"},
		{"echo \"$(id)\"", 2, "", "command substitution $(...) is not available"},
		{"echo `id`", 2, "", "command substitution `...` is not available"},
		{"hostname > " + out, 2, "", "redirection (>) is not available"},
		{"hostname >> " + out, 2, "", "redirection (>) is not available"},
		{"cat < " + secret, 2, "", "redirection (<) is not available"},
		{"hostname; echo x > " + out, 2, "", "redirection"}, // refused before anything runs
		{"(cat /etc/shadow)", 2, "", "subshells"},
		{"sleep 100 &", 2, "", "background jobs (&) are not available"},
		{"echo ${PATH/bin/x}", 2, "", "parameter expansion"},
		{"echo $PATH", 0, "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n", ""},
		{`echo "$HOME" '$HOME' \$HOME`, 0, "/root $HOME $HOME\n", ""},
		{"echo 'a;b' \"c|d\" e\\&f", 0, "a;b c|d e&f\n", ""},
		{"virsh list --name | grep web | wc -l", 0, "1\n", ""},
		{"false || echo fallback && echo chained", 0, "fallback\nchained\n", ""},
		{"false; echo $?", 0, "1\n", ""},
		{"echo a; exit 3; echo b", 3, "a\n", ""},
		{"uname -r; cat /etc/hostname", 0, "5.10.0-acli-sim\nsim-host-1\n", ""},
		{"hostname |", 2, "", "syntax error"},
		{"; ;", 0, "", ""},
	} {
		res := run(t, s, targets[:1], s.ClientKeyPath(), tc.cmd, 0)
		h := res.Hosts[0]
		if h.Status == fanout.StatusUnreachable || h.ExitCode != tc.code || h.Stdout != tc.stdout || !strings.Contains(h.Stderr, tc.inStderr) {
			t.Errorf("%s: exit %d stdout %q stderr %q; want exit %d stdout %q stderr containing %q",
				tc.cmd, h.ExitCode, h.Stdout, h.Stderr, tc.code, tc.stdout, tc.inStderr)
		}
		if strings.Contains(h.Stdout+h.Stderr, "TOPSECRET") {
			t.Errorf("%s: read a file of the manager's machine", tc.cmd)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a redirection wrote a file on the manager's machine")
	}
}

func TestShellCommandsOnACVM(t *testing.T) {
	s, targets := serve(t, t.TempDir())
	res := run(t, s, targets[1:2], s.ClientKeyPath(), "uptime; help", 0)
	h := res.Hosts[0]
	if h.ExitCode != 0 || !strings.Contains(h.Stdout, " up ") || !strings.Contains(h.Stdout, "load average:") ||
		!strings.Contains(h.Stdout, "sim-cvm-1 is a simulated controller VM") || strings.Contains(h.Stdout, "virsh") {
		t.Errorf("cvm: %+v", h)
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"echo 'a' \"$B\" ${C} $?", "a|b||c&&d;e", "x\\\ny", "'", "\"$(", "${", "#c\nd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_, _ = tokenize(line, func(string) string { return "v" })
	})
}
