package shell

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/client/clienttest"
	"github.com/acli-dev/acli/commands"
	"github.com/acli-dev/acli/render"
)

func setup(t *testing.T, stdin string) (*commands.Factory, *clienttest.Fake, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	fake := clienttest.New()
	c := fake.Serve(t)
	io, out, errb := render.Test(stdin, false)
	f := &commands.Factory{IO: io, Registry: commands.Default(), Getenv: func(string) string { return "" },
		Connect: func(context.Context, client.Options) (*client.Client, error) { return c, nil }, Shell: Run}
	return f, fake, out, errb
}

func TestScriptRunsLinesAndSkipsComments(t *testing.T) {
	script := `# create a network and two VMs
net.create vlan100 vlan=100

vm.create "web 01" memory=1G description="front end"
   # indented comment
vm.create web02 memory=1G
-o json host.list
host.list
`
	f, fake, out, errb := setup(t, script)
	code := f.Execute(context.Background(), nil)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if fake.Calls("CreateVm") != 2 || fake.Calls("CreateNetwork") != 1 {
		t.Fatalf("calls: vm %d net %d", fake.Calls("CreateVm"), fake.Calls("CreateNetwork"))
	}
	o := out.String()
	// -o json on one line does not leak into the next: a fresh tree per line.
	if !strings.Contains(o, `{"data": [`) || !strings.HasSuffix(o, "node-3           127.20.1.23\n") {
		t.Fatalf("output:\n%s", o)
	}
}

func TestScriptStopsAtFirstFailure(t *testing.T) {
	script := "vm.create a memory=1G\nvm.get nosuch\nvm.create b memory=1G\n"
	f, fake, _, errb := setup(t, script)
	code := f.Execute(context.Background(), nil)
	if code != 3 {
		t.Fatalf("exit %d, want the failing line's 3", code)
	}
	if fake.Calls("CreateVm") != 1 {
		t.Fatalf("lines after the failure ran: %d creates", fake.Calls("CreateVm"))
	}
	e := errb.String()
	if !strings.Contains(e, `Error: VM "nosuch" not found`) || !strings.Contains(e, "acli: stopped at line 2: vm.get nosuch") {
		t.Fatalf("stderr: %q", e)
	}
	if strings.Count(e, "Error:") != 1 {
		t.Fatalf("the error must be printed once: %q", e)
	}
}

func TestScriptUsageAndQuotes(t *testing.T) {
	for _, c := range []struct {
		script string
		code   int
		want   string
	}{
		{"vm.lst\n", 2, `did you mean "vm.list"`},
		{"vm.create \"unterminated memory=1G\n", 2, "line 1: cannot split line"},
		{"exit\nvm.get nosuch\n", 0, ""},
		{"# only comments\n\n", 0, ""},
		{"vm.create x memory=1G\nquit\nvm.lst\n", 0, ""},
	} {
		f, _, _, errb := setup(t, c.script)
		code := f.Execute(context.Background(), nil)
		if code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d stderr %q", c.script, code, errb.String())
		}
	}
}

func TestSplit(t *testing.T) {
	words, err := Split(`vm.update "web 01" description='a "quoted" word' name=x\ y`)
	if err != nil || len(words) != 4 || words[1] != "web 01" || words[2] != `description=a "quoted" word` || words[3] != "name=x y" {
		t.Fatalf("%q %v", words, err)
	}
}

// Ctrl-C during a command (SIGINT in cooked mode) cancels that command and
// leaves the task running; the process and the shell survive.
func TestInterruptCancelsOnlyTheCommand(t *testing.T) {
	f, fake, _, errb := setup(t, "")
	fake.HoldTasks(true)
	go func() {
		for fake.Calls("WatchTask") == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
	}()
	code := runLine(context.Background(), f, f.DefaultGlobals(), []string{"vm.create", "slow", "memory=1G"})
	if code != 7 || !regexp.MustCompile(`^Error: interrupted; VmCreate goes on as task \S+ on clusterd \(see: task.wait \S+\)\n$`).MatchString(errb.String()) {
		t.Fatalf("exit %d: %q", code, errb.String())
	}
	// The next line runs normally.
	fake.HoldTasks(false)
	if code := runLine(context.Background(), f, f.DefaultGlobals(), []string{"host.list"}); code != 0 {
		t.Fatalf("next line: exit %d", code)
	}
}

// A script run with -o json prints one envelope per line, and none of its
// own after them.
func TestScriptJSONOneDocumentPerLine(t *testing.T) {
	f, _, out, errb := setup(t, "cluster.get\nhost.list\n")
	if code := f.Execute(context.Background(), []string{"-o", "json"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], `{"data": {`) || !strings.HasPrefix(lines[1], `{"data": [`) {
		t.Fatalf("output:\n%s", out.String())
	}
}
