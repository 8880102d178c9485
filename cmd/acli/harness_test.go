package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The end-to-end harness: built binaries (TestMain), clusterd processes
// stopped by their PID, acli runs, and tmux sessions for the shell.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "acli-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := func() int {
		for name, cmd := range map[string]*exec.Cmd{
			"acli":     goBuild(filepath.Join(dir, "acli"), "."),
			"clusterd": exec.Command("go", "build", "-o", filepath.Join(dir, "clusterd"), "../clusterd"),
		} {
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
				return 1
			}
		}
		return m.Run()
	}()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// goBuild builds acli (or a program it is measured against) as make build
// does: statically (no dynamic loader to run
// at start-up) and without grpc's x/net/trace (its package initialisation
// and html/template's are start-up time that acli never uses).
func goBuild(out string, pkg ...string) *exec.Cmd {
	return goAsMake("build", append([]string{"-o", out}, pkg...)...)
}

// goAsMake runs a go command with make build's settings for acli.
func goAsMake(verb string, args ...string) *exec.Cmd {
	cmd := exec.Command("go", append([]string{verb, "-tags", "grpcnotrace"}, args...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

var readyLine = regexp.MustCompile(`clusterd: serving on (\S+) `)

// daemon is one clusterd process on a data directory of the test's.
type daemon struct {
	addr   string
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *bytes.Buffer
}

// launchClusterd starts clusterd on dir and a free loopback port and waits
// until it serves; it is stopped by its PID when the test ends (unless
// killed before). An error means it exited first (its stderr says why).
func launchClusterd(t testing.TB, dir string, args ...string) (*daemon, error) {
	t.Helper()
	d := &daemon{done: make(chan struct{}), stderr: &bytes.Buffer{}}
	d.cmd = exec.Command(filepath.Join(binDir, "clusterd"), append([]string{"--listen", "127.0.0.1:0", "--data-dir", dir}, args...)...)
	// clusterd dies with the test binary: one killed by the test timeout
	// would leave it serving (and holding its data services portal).
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-d.done:
			return
		default:
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_ = d.cmd.Wait()
		close(d.done)
	}()
	select {
	case d.addr = <-addr:
		return d, nil
	case <-d.done:
		return nil, errors.New(d.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("clusterd not ready: %s", d.stderr.String())
	}
	return nil, nil
}

// kill ends clusterd with SIGKILL, as a crash or a power cut would.
func (d *daemon) kill(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.done
}

// startClusterd runs a sim cluster (extra: more clusterd flags) and
// returns its address.
func startClusterd(t testing.TB, extra ...string) string {
	t.Helper()
	return startClusterdWith(t, append([]string{"--sim", "3", "--sim-speed", "1000"}, extra...)...)
}

// startClusterdWith runs clusterd with args on a fresh data dir.
func startClusterdWith(t testing.TB, args ...string) string {
	t.Helper()
	d, err := launchClusterd(t, t.TempDir(), args...)
	if err != nil {
		t.Fatalf("clusterd exited: %v", err)
	}
	return d.addr
}

type result struct {
	code     int
	out, err string
}

// acli runs the binary with HOME in a temp dir and stdin from in.
func acli(t testing.TB, addr, in string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "acli"), args...)
	cmd.Env = append(os.Environ(), "ACLI_SERVER="+addr, "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(in)
	return runCmd(t, cmd)
}

// runCmd runs cmd to its end and returns its exit code and output.
func runCmd(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// data runs acli -o json, requires success, and decodes the envelope's
// data into v.
func data(t testing.TB, addr string, v any, args ...string) {
	t.Helper()
	r := acli(t, addr, "", append([]string{"-o", "json"}, args...)...)
	var env struct {
		Data   json.RawMessage `json:"data"`
		Status int             `json:"status"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.out), &env) != nil || env.Status != 0 {
		t.Fatalf("acli -o json %v: exit %d\n%s%s", args, r.code, r.out, r.err)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		t.Fatalf("acli -o json %v: %v\n%s", args, err, env.Data)
	}
}

// tmuxSession is a terminal running a script, driven by keys and read
// from the screen.
type tmuxSession struct {
	t    *testing.T
	tmux string
	sock string
}

// newTmux starts script in a detached tmux session of the given size; it is
// killed when the test ends. Without tmux the test is skipped.
func newTmux(t *testing.T, width, height int, script string) *tmuxSession {
	t.Helper()
	bin, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux not installed")
	}
	s := &tmuxSession{t: t, tmux: bin, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	s.run("-f", "/dev/null", "new-session", "-d", "-x", fmt.Sprint(width), "-y", fmt.Sprint(height), script)
	t.Cleanup(func() { _ = exec.Command(bin, "-S", s.sock, "kill-server").Run() })
	return s
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.tmux, append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v %s", args, err, out)
	}
	return string(out)
}

// keys sends tmux key names (Tab, Enter, C-c); typeText sends text as is.
func (s *tmuxSession) keys(k ...string)     { s.t.Helper(); s.run(append([]string{"send-keys"}, k...)...) }
func (s *tmuxSession) typeText(text string) { s.t.Helper(); s.run("send-keys", "-l", text) }
func (s *tmuxSession) screen() string       { s.t.Helper(); return s.run("capture-pane", "-p", "-S", "-100") }
func (s *tmuxSession) waitFor(what string) string {
	s.t.Helper()
	return s.waitWithin(what, 15*time.Second)
}

// waitWithin polls the screen until it shows what.
func (s *tmuxSession) waitWithin(what string, d time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		sc := s.screen()
		if strings.Contains(sc, what) {
			return sc
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("screen never showed %q:\n%s", what, sc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitUntil polls the screen until ok holds; what says what it waits for.
func (s *tmuxSession) waitUntil(what string, ok func(screen string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sc := s.screen()
		if ok(sc) {
			return sc
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("screen never showed %s:\n%s", what, sc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPrompt waits until the shell's last prompt is empty (a completion
// menu may follow it): the shell drew it in raw mode, so keys sent now
// reach it.
func (s *tmuxSession) waitPrompt() string {
	s.t.Helper()
	return s.waitUntil("an empty prompt", emptyPrompt)
}

func emptyPrompt(sc string) bool {
	i := strings.LastIndex(sc, "<acropolis>")
	return i >= 0 && strings.TrimRight(strings.SplitN(sc[i:], "\n", 2)[0], " ") == "<acropolis>"
}

// waitFile waits until a file the script writes is there and not empty.
func waitFile(t *testing.T, path string, d time.Duration, screen func() string) []byte {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s:\n%s", path, screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
