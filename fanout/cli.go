package fanout

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/acli-dev/acli/render"
	"github.com/spf13/pflag"
)

// TargetSource supplies the default targets when neither --hosts nor
// --hosts-file is given: the CLI asks clusterd for hypervisor IPs
// (StyleHostSSH) or CVM IPs (StyleAllSSH), with ports and published host
// keys filled in.
type TargetSource func(ctx context.Context, style Style) ([]Target, error)

// Flags binds the hostssh/allssh command line to Options.
type Flags struct {
	Options
	Hosts     []string
	HostsFile []string
	Exclude   []string
	Output    string
}

// NewFlags returns flags preset with DefaultOptions(style).
func NewFlags(style Style) *Flags {
	return &Flags{Options: DefaultOptions(style), Output: "text"}
}

// Bind registers the flags on fs (a cobra command's Flags() works as is).
func (f *Flags) Bind(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.Hosts, "hosts", nil, "targets: a,b,c with ranges 10.0.0.[1-64], node[01-16], host:port (repeatable)")
	fs.StringArrayVar(&f.HostsFile, "hosts-file", nil, "file with one target per line (# comments; repeatable)")
	fs.StringArrayVar(&f.Exclude, "exclude", nil, "targets to skip, same syntax as --hosts, globs allowed (repeatable)")
	fs.StringVarP(&f.User, "user", "l", f.User, "remote user (default: ~/.ssh/config, then "+f.Style.defaultUserHelp()+")")
	fs.IntVarP(&f.Port, "port", "p", f.Port, "SSH port for targets without :port (default: ~/.ssh/config, then 22)")
	fs.StringArrayVarP(&f.IdentityFiles, "identity", "i", nil, "private key file, offered before ssh-agent and ~/.ssh keys (repeatable)")
	fs.StringArrayVar(&f.KnownHostsFiles, "known-hosts", nil, "extra known_hosts file (OpenSSH format; first one records --accept-new keys)")
	fs.BoolVar(&f.AcceptNew, "accept-new", false, "record host keys of hosts not yet known (changed keys are still refused)")
	fs.BoolVar(&f.InsecureIgnoreHostKey, "insecure-ignore-host-key", false, "do not verify host keys (unsafe)")
	fs.IntVarP(&f.Fanout, "fanout", "f", f.Fanout, "maximum hosts at once")
	fs.Var((*seconds)(&f.ConnectTimeout), "connect-timeout", "limit for connect + SSH handshake (e.g. 5s, 500ms or 5)")
	fs.Var((*seconds)(&f.CommandTimeout), "command-timeout", "limit for the remote command per host (default none)")
	fs.BoolVarP(&f.Gather, "gather", "b", false, "fold hosts with identical output under one header")
	fs.BoolVarP(&f.MaxExit, "max-exit", "S", false, "exit with the largest remote exit code")
	fs.StringVarP(&f.Output, "output", "o", f.Output, "output format: text, json, yaml or csv")
}

// ResolveTargets resolves --hosts/--hosts-file/--exclude, or asks src when no
// target flag was given.
func (f *Flags) ResolveTargets(ctx context.Context, src TargetSource) ([]Target, error) {
	var ts []Target
	for _, h := range f.Hosts {
		t, err := ParseTargets(h)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t...)
	}
	for _, file := range f.HostsFile {
		t, err := ReadTargetsFile(file)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t...)
	}
	if len(f.Hosts) == 0 && len(f.HostsFile) == 0 {
		if src == nil {
			return nil, errors.New("no targets: give --hosts a,b,c or --hosts-file FILE")
		}
		var err error
		if ts, err = src(ctx, f.Style); err != nil {
			return nil, &sourceError{err}
		}
	}
	for _, x := range f.Exclude {
		var err error
		if ts, err = Exclude(ts, x); err != nil {
			return nil, err
		}
	}
	if len(ts) == 0 {
		return nil, errors.New("no targets left to run on")
	}
	return Dedup(ts), nil
}

// Command is hostssh or allssh as a reusable unit: the CLI runs it with
// its own context and target source (and defaults from the environment).
type Command struct {
	Style  Style
	Source TargetSource
	// Prepare, when set, may adjust the parsed flags before the run (e.g.
	// add the simulated cluster's client key as an identity file).
	Prepare func(*Flags) error
	// SourceExit maps an error of Source to the exit status (e.g. 6 when
	// clusterd is unreachable); nil means ExitUsage.
	SourceExit func(error) int
}

// Usage exit status (the project's table: 2 = usage/bad input).
const ExitUsage = 2

// FlagSet returns the command's flags bound to f. Parsing stops at the
// first word that is not a flag, as with ssh(1): everything from there on
// is the remote command, so "hostssh ls -l /tmp" needs no quotes.
func (c Command) FlagSet(f *Flags) *pflag.FlagSet {
	fs := pflag.NewFlagSet(c.Style.name(), pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SetInterspersed(false)
	f.Bind(fs)
	fs.Usage = func() {}
	return fs
}

// Help is the text of --help: synopsis, description and flags.
func (c Command) Help(flagUsages string) string {
	name := c.Style.name()
	what := "Runs the command on every hypervisor host in parallel over SSH, as root\n" +
		"unless --user or ~/.ssh/config says otherwise,"
	if c.Style == StyleAllSSH {
		what = "Runs the command on every controller VM (the local one last) in parallel\n" +
			"over SSH, as the user from --user or ~/.ssh/config, else the local user,"
	}
	return fmt.Sprintf(`Usage: %s [flags] "<command>"

%s
and prints each host's output under a banner, in target order. Flags go
before the command; the command is sent to each remote shell exactly as
written. Exit status: 0 when every host ran it and exited 0, else 1 (with
a summary of failed and unreachable hosts on stderr); --max-exit gives the
largest remote exit code.

Ctrl-C (or --command-timeout) sends each remote command SIGINT (SIGKILL)
and closes its session. OpenSSH's sshd does not pass signals to root
logins: there a command stops when it next reads input or writes output,
and one that does neither (sleep) runs to its end.

Flags:
%s
%s`, name, what, flagUsages, ConfigHelp)
}

// Run parses args (flags and the command, without the program name) and
// runs the fan-out; it returns the process exit status.
func (c Command) Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := NewFlags(c.Style)
	fs := c.FlagSet(f)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			io.WriteString(stdout, c.Help(fs.FlagUsages()))
			return 0
		}
		fmt.Fprintf(stderr, "%s: %s\n", c.Style.name(), FlagError(err, fs))
		return ExitUsage
	}
	return c.Exec(ctx, f, fs.Args(), stdout, stderr)
}

// Exec runs the fan-out with parsed flags; words are the remote command.
func (c Command) Exec(ctx context.Context, f *Flags, words []string, stdout, stderr io.Writer) int {
	name := c.Style.name()
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "%s: %s\n", name, msg)
		return ExitUsage
	}
	if len(words) == 0 {
		return usage(fmt.Sprintf("missing command; usage: %s [flags] \"<command>\"", name))
	}
	// Like ssh(1), several words are joined with spaces; quote the
	// command to send it exactly as written.
	cmd := strings.Join(words, " ")
	switch f.Output {
	case "text", "table":
	case "json", "yaml", "csv":
		f.Silent = true
	default:
		return usage(fmt.Sprintf("unknown output format %q: want text, json, yaml or csv", f.Output))
	}
	if f.Fanout < 1 {
		return usage(fmt.Sprintf("bad --fanout %d: want 1 or more, e.g. --fanout %d", f.Fanout, DefaultFanout))
	}
	if f.Port < 0 || f.Port > 65535 {
		return usage(fmt.Sprintf("bad --port %d: want 1-65535, e.g. --port 22", f.Port))
	}
	if f.AcceptNew && f.InsecureIgnoreHostKey {
		return usage("--accept-new and --insecure-ignore-host-key contradict each other; pick one")
	}
	if c.Prepare != nil {
		if err := c.Prepare(f); err != nil {
			return usage(err.Error())
		}
	}
	targets, err := f.ResolveTargets(ctx, c.Source)
	if err != nil {
		code := ExitUsage
		var se *sourceError
		if errors.As(err, &se) && c.SourceExit != nil {
			code = c.SourceExit(se.err)
		}
		fmt.Fprintf(stderr, "%s: %s\n", name, err)
		return code
	}
	f.Options.Targets = targets
	res, err := Run(ctx, f.Options, cmd, stdout, stderr)
	switch {
	case ctx.Err() != nil:
		if f.Output != "text" && f.Output != "table" {
			writeDoc(stdout, f.Output, res, "interrupted")
			io.WriteString(stderr, res.Summary())
		}
		return ExitCancelled
	case err != nil:
		return usage(err.Error())
	}
	if f.Output != "text" && f.Output != "table" {
		writeDoc(stdout, f.Output, res, strings.TrimSpace(res.Summary()))
		io.WriteString(stderr, res.Summary())
	}
	return res.Status
}

// sourceError marks a TargetSource failure, whose exit status the
// caller decides (clusterd unreachable is not a usage error).
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// writeDoc emits the results as json or yaml (the project's one-document
// envelope) or csv (one row per host, the JSON keys as headers).
func writeDoc(w io.Writer, format string, res Result, errMsg string) {
	switch format {
	case "yaml":
		var buf bytes.Buffer
		writeJSON(&buf, res, errMsg)
		_ = render.WriteYAML(w, json.RawMessage(buf.Bytes()))
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"host", "port", "status", "exit_code", "signal", "stdout", "stderr", "duration_seconds", "error"})
		for _, h := range res.Hosts {
			_ = cw.Write([]string{h.Host, strconv.Itoa(h.Port), string(h.Status), strconv.Itoa(h.ExitCode), h.Signal, h.Stdout, h.Stderr,
				strconv.FormatFloat(h.DurationSeconds, 'f', -1, 64), h.Error})
		}
		cw.Flush()
	default:
		writeJSON(w, res, errMsg)
	}
}

// writeJSON emits the project's one-document envelope.
func writeJSON(w io.Writer, res Result, errMsg string) {
	doc := struct {
		Data   []HostResult `json:"data"`
		Error  *string      `json:"error"`
		Status int          `json:"status"`
	}{Data: res.Hosts, Status: res.Status}
	if doc.Data == nil {
		doc.Data = []HostResult{}
	}
	if errMsg != "" {
		doc.Error = &errMsg
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(doc)
}

// seconds is a duration flag that also takes a bare number of seconds.
type seconds time.Duration

func (s *seconds) String() string {
	if *s == 0 {
		return "0"
	}
	return time.Duration(*s).String()
}
func (s *seconds) Type() string { return "duration" }
func (s *seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		*s = seconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("want a duration such as 5s, 500ms or 2m")
	}
	*s = seconds(d)
	return nil
}

// defaultUserHelp names the default user in help without reading the
// environment, so generated docs are the same on every machine.
func (s Style) defaultUserHelp() string {
	if s == StyleAllSSH {
		return "the local user"
	}
	return "root"
}

// FlagError adds the nearest valid flag to pflag's unknown-flag errors.
func FlagError(err error, fs *pflag.FlagSet) string {
	msg := err.Error()
	const prefix = "unknown flag: --"
	if !strings.HasPrefix(msg, prefix) {
		return msg
	}
	bad := strings.TrimPrefix(msg, prefix)
	best, bestD := "", 4
	fs.VisitAll(func(fl *pflag.Flag) {
		if d := editDistance(bad, fl.Name); d < bestD {
			best, bestD = fl.Name, d
		}
	})
	if best != "" {
		return fmt.Sprintf("unknown flag --%s (did you mean --%s?)", bad, best)
	}
	return fmt.Sprintf("unknown flag --%s (see --help)", bad)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
