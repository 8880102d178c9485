// Package shell is acli's interactive loop: go-prompt with the <acropolis>
// prompt, registry-driven completion and persistent history on a terminal,
// and a plain line reader for scripts (acli < script.acli) otherwise.
// Every line runs on a fresh cobra tree, so nothing leaks between lines.
package shell

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/commands"
	"github.com/acli-dev/acli/completion"
	"github.com/anmitsu/go-shlex"
	prompt "github.com/elk-language/go-prompt"
	"golang.org/x/term"
)

// Prompt is the interactive prompt, as in acli.
const Prompt = "<acropolis> "

// HistoryFile is the history file name in the home directory.
const HistoryFile = ".acli_history"

// HistoryEnv names another history file; set and empty, no history is kept.
const HistoryEnv = "ACLI_HISTORY"

// historyKeep is how many history lines are loaded at start.
const historyKeep = 1000

// Run is the Factory's Shell: interactive on a terminal, a script otherwise.
func Run(ctx context.Context, f *commands.Factory, g commands.Globals) error {
	if f.IO.InTTY {
		return Interactive(ctx, f, g)
	}
	return Script(ctx, f, g, f.IO.In)
}

// Split splits a line the way a POSIX shell does (quotes, escapes).
func Split(line string) ([]string, error) {
	words, err := shlex.Split(line, true)
	if err != nil {
		return nil, client.Errorf(client.ExitUsage, "cannot split line: %v (check the quotes)", err)
	}
	return words, nil
}

// lines splits shell input into its non-blank lines.
func lines(input string) []string {
	var out []string
	for _, l := range strings.Split(input, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// isExit reports whether a line leaves the shell.
func isExit(line string) bool {
	switch strings.TrimSpace(line) {
	case "exit", "quit":
		return true
	}
	return false
}

// Script runs commands from r line by line: blank lines and # comments are
// skipped; the first failing line stops the script and its exit code is
// returned as commands.ExitStatus.
func Script(ctx context.Context, f *commands.Factory, g commands.Globals, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if isExit(line) {
			return nil
		}
		words, err := Split(line)
		if err != nil {
			fmt.Fprintf(f.IO.Err, "Error: line %d: %v\n", n, err)
			return commands.ExitStatus(client.ExitUsage)
		}
		if code := f.ExecuteLine(ctx, words, g); code != 0 {
			fmt.Fprintf(f.IO.Err, "acli: stopped at line %d: %s\n", n, line)
			return commands.ExitStatus(code)
		}
	}
	if err := sc.Err(); err != nil {
		return client.Errorf(client.ExitFailed, "reading commands: %v", err)
	}
	return nil
}

// Interactive runs the go-prompt loop until exit, quit or Ctrl-D. Ctrl-C at
// the prompt clears the line; during a command it cancels that command.
// The terminal state is saved first and restored on every way out.
func Interactive(ctx context.Context, f *commands.Factory, g commands.Globals) error {
	fd := int(os.Stdin.Fd())
	if st, err := term.GetState(fd); err == nil {
		defer func() { _ = term.Restore(fd, st) }()
	}
	hist := openHistory(historyPath())
	defer hist.close()
	_, _ = fmt.Fprint(f.IO.Out, banner(ctx, f, g, hist.path))

	cache := completion.NewCache(func(ctx context.Context, k commands.Kind) ([]commands.Entity, error) {
		cg := g
		cg.Timeout = completion.DefaultTTL / 5
		c, err := f.Client(ctx, cg)
		if err != nil {
			return nil, err
		}
		return commands.ListEntities(ctx, c, k)
	}, completion.DefaultTTL)
	cache.Warm(commands.KindVM, commands.KindHost)
	probe := completion.NewDriverProbe(func(ctx context.Context) (string, error) {
		cg := g
		cg.Timeout = completion.DefaultTTL / 5
		c, err := f.Client(ctx, cg)
		if err != nil {
			return "", err
		}
		cl, err := c.Cluster.GetCluster(ctx, &acliv1.GetClusterRequest{})
		return cl.GetDriver(), err
	}, completion.DefaultTTL)
	probe.Driver() // ask before the first Tab
	comp := &completion.Completer{Registry: f.Registry, Names: cache.Names, Driver: probe.Driver}

	// A paste of several lines arrives as one input: each line is its own
	// command, as if typed; "exit" among them leaves after the lines before it.
	exec := func(input string) {
		for _, line := range lines(input) {
			if isExit(line) {
				return
			}
			hist.add(line)
			words, err := Split(line)
			if err != nil {
				fmt.Fprintf(f.IO.Err, "Error: %v\n", err)
				continue
			}
			runLine(ctx, f, g, words)
		}
	}
	p := prompt.New(exec,
		prompt.WithPrefix(Prompt),
		prompt.WithReader(&lineReader{Reader: prompt.NewStdinReader()}),
		prompt.WithCompleter(comp.Prompt),
		prompt.WithCompletionWordSeparator(completion.WordSeparator),
		prompt.WithHistory(hist.entries),
		prompt.WithExitChecker(func(in string, breakline bool) bool { return breakline && slices.ContainsFunc(lines(in), isExit) }),
		prompt.WithInterruptCallback(func(*prompt.Prompt, os.Signal) {}),
		prompt.WithPrefixTextColor(prompt.DefaultColor),
	)
	p.Run()
	return nil
}

// runLine runs one line; SIGINT (Ctrl-C in cooked mode) cancels only it.
func runLine(ctx context.Context, f *commands.Factory, g commands.Globals, words []string) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGQUIT)
	defer signal.Stop(sig)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sig:
			cancel()
		case <-done:
		}
	}()
	return f.ExecuteLine(ctx, words, g)
}

// historyPath is where history goes: $ACLI_HISTORY when set (empty: none),
// else ~/.acli_history.
func historyPath() string {
	if v, ok := os.LookupEnv(HistoryEnv); ok {
		return v
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, HistoryFile)
}

// history keeps the shell's history file: loaded at start, appended per line.
type history struct {
	path    string
	entries []string
	file    *os.File
}

func openHistory(path string) *history {
	h := &history{path: path}
	if path == "" {
		return h
	}
	if b, err := os.ReadFile(path); err == nil {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > historyKeep {
			lines = lines[len(lines)-historyKeep:]
		}
		for _, l := range lines {
			if l != "" {
				h.entries = append(h.entries, l)
			}
		}
	}
	// History is a convenience: if it cannot be written, the shell still works.
	h.file, _ = os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	return h
}

func (h *history) add(line string) {
	if h.file != nil && !strings.ContainsAny(line, "\n\r") {
		_, _ = h.file.WriteString(line + "\n")
	}
}

func (h *history) close() {
	if h.file != nil {
		_ = h.file.Close()
	}
}
