package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
	"github.com/spf13/cobra"
)

// runState carries what a leaf leaves behind for Execute to finish with.
type runState struct {
	printer *render.Printer
	err     error // found where cobra gives no way to return one (help)
	shell   bool  // the shell ran: each line printed its own result
	inShell bool  // this is a line typed in the shell
}

// Execute runs one-shot argv (without the program name) and returns the
// exit code. With no command on a terminal it starts the shell.
func (f *Factory) Execute(ctx context.Context, args []string) int {
	return f.execute(ctx, args, f.DefaultGlobals(), false)
}

// ExecuteLine runs one shell line on a fresh cobra tree; defaults are the
// globals the shell was started with.
func (f *Factory) ExecuteLine(ctx context.Context, args []string, defaults Globals) int {
	return f.execute(ctx, args, defaults, true)
}

func (f *Factory) execute(ctx context.Context, args []string, defaults Globals, inShell bool) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "version") {
		// Answered before any command tree is built.
		_, _ = fmt.Fprintln(f.IO.Out, Version())
		return 0
	}
	g := defaults
	f.stale.Store(nil)
	st := &runState{inShell: inShell}
	root := f.newRoot(&g, st, inShell, args)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		err = st.err
	}
	var es ExitStatus
	if errors.As(err, &es) {
		return int(es)
	}
	if st.shell && err == nil {
		return 0
	}
	p := st.printer
	if p == nil {
		p = f.printer(g, inShell)
	}
	code := client.ExitCode(err)
	var details []string
	var ae *client.Error
	if errors.As(err, &ae) {
		details = ae.Details
	}
	if code == client.ExitNotFound && (p.Format == render.Table || p.Format == render.Wide || p.Format == render.Blocks) {
		// acli's text for a missing entity, which scripts grep for.
		for _, n := range client.UnknownNames(err) {
			_, _ = fmt.Fprintf(f.IO.Out, "Unknown name: %s\n", n)
		}
	}
	if s := f.stale.Load(); s != nil {
		p.Stale = *s
	}
	if ferr := p.Finish(err, code, details); ferr != nil && code == 0 {
		code = client.ExitFailed
	}
	return code
}

func (f *Factory) printer(g Globals, inShell bool) *render.Printer {
	format, err := render.ParseFormat(g.Output)
	if err != nil {
		format = render.Table
	}
	p := &render.Printer{IO: f.IO, Format: format, NoHeaders: g.NoHeaders, Shell: inShell, Columns: g.Columns, SortBy: g.SortBy,
		Color: f.IO.OutTTY && (f.Getenv == nil || f.Getenv("NO_COLOR") == ""), Terminal: f.IO.OutTTY, Width: f.IO.Columns(),
		Now: f.Now, Location: f.Location}
	if g.JQ != "" {
		p.JQ, _ = render.CompileJQ(g.JQ) // checked before the command ran
	}
	return p
}

// NewRoot builds a fresh cobra tree from the registry, binding the global
// flags into g. A new tree per line keeps shell lines independent.
func (f *Factory) NewRoot(g *Globals, st *runState, inShell bool) *cobra.Command {
	return f.newRoot(g, st, inShell, nil)
}

// newRoot builds the tree args need: when their first word is a command of
// the registry, that command's leaf alone (a one-shot command builds no
// more than it runs); otherwise every command (help, completion, typos).
func (f *Factory) newRoot(g *Globals, st *runState, inShell bool, args []string) *cobra.Command {
	root := &cobra.Command{
		Use:           "acli",
		Short:         "Manage hyperconverged KVM clusters",
		Args:          cobra.ArbitraryArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if _, err := render.ParseFormat(g.Output); err != nil {
				return usageErrorf("-o: %v", err)
			}
			if g.Timeout < 0 {
				return usageErrorf("--timeout must not be negative")
			}
			f.debug.Store(g.Debug)
			if g.JQ != "" {
				if _, err := render.CompileJQ(g.JQ); err != nil {
					return usageErrorf("%v", err)
				}
			}
			return checkServer(g.Server)
		},
		RunE: func(cc *cobra.Command, args []string) error {
			if len(args) > 0 {
				_, err := f.Registry.Find(args[0])
				if inShell || f.Script == nil {
					return err
				}
				r, close, serr := scriptFile(args[0], f.IO.In)
				if serr != nil {
					return err // neither a command nor a script
				}
				defer close()
				if len(args) > 1 {
					return usageErrorf("a script takes no arguments, got %q", args[1])
				}
				st.shell = true
				return f.Script(cc.Context(), f, *g, r)
			}
			if inShell {
				return nil
			}
			if f.Shell == nil {
				return usageErrorf("no command given (try: acli help)")
			}
			st.shell = true
			return f.Shell(cc.Context(), f, *g)
		},
	}
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.Err)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.Output, "output", "o", g.Output, "output format: table (acli's shapes), wide, block, json, json-pretty, yaml, csv, name or value")
	pf.StringSliceVarP(&g.Columns, "columns", "c", g.Columns, "columns to show, by header or JSON key, e.g. -c name,power_state")
	pf.StringVar(&g.SortBy, "sort-by", g.SortBy, "order rows by this column, e.g. --sort-by memory")
	pf.BoolVar(&g.Debug, "debug", g.Debug, "trace every call to clusterd on stderr")
	pf.BoolVarP(&g.Watch, "watch", "w", g.Watch, "vm.list and host.list: after the list, print each row that changes or goes (marked deleted or filtered out) until Ctrl-C")
	pf.StringVar(&g.JQ, "jq", g.JQ, "print the result's JSON through this jq expression, e.g. --jq '.[].name'")
	pf.BoolVarP(&g.Yes, "yes", "y", g.Yes, "answer yes to confirmations")
	pf.StringVar(&g.Server, "server", g.Server, "clusterd address host:port, or a comma-separated list of the cluster's managers to fail over between (env ACLI_SERVER; default the context's, else "+client.DefaultAddr+")")
	pf.StringVar(&g.Context, "context", g.Context, "context of the config file to use (env ACLI_CONTEXT; file: ACLI_CONFIG, else ~/.config/acli/config.yaml)")
	pf.StringVar(&g.CACert, "cacert", g.CACert, "CA certificate that signed clusterd's certificate; turns on TLS (env ACLI_CACERT)")
	pf.StringVar(&g.Cert, "cert", g.Cert, "client certificate for TLS (env ACLI_CERT)")
	pf.StringVar(&g.Key, "key", g.Key, "key of the client certificate (env ACLI_KEY)")
	pf.DurationVar(&g.Timeout, "timeout", g.Timeout, "give up after this long, e.g. 30s (0: no limit); waiting tasks keep running")
	pf.BoolVar(&g.NoHeaders, "no-headers", g.NoHeaders, "omit table and CSV headers")
	pf.StringVar(&g.Token, "token", g.Token, "bearer token for clusterd (env ACLI_TOKEN)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageErrorf("%v (see: acli help)", err)
	})
	root.SetHelpFunc(func(cc *cobra.Command, args []string) {
		if c, ok := f.Registry.Lookup(cc.Name()); ok {
			_, _ = fmt.Fprint(f.IO.Out, CommandHelp(c))
			return
		}
		if cc == root {
			// "acli vm.migrat --help" lands here: say what is unknown.
			if w := firstWord(root, args); w != "" {
				if _, err := f.Registry.Find(w); err != nil {
					st.err = err
					return
				}
			}
			_, _ = fmt.Fprint(f.IO.Out, RootHelp(f.Registry))
			return
		}
		if text, err := Help(f.Registry, []string{cc.Name()}); err == nil {
			_, _ = fmt.Fprint(f.IO.Out, text) // completion, version
			return
		}
		_, _ = fmt.Fprint(f.IO.Out, cc.UsageString())
	})
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [namespace | command]",
		Short: "Show help for acli, a namespace or a command",
		Args:  cobra.MaximumNArgs(1),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, ns := range f.Registry.Namespaces {
				out = append(out, cobra.CompletionWithDesc(ns.Name, ns.Summary))
			}
			for _, c := range f.Registry.Commands() {
				out = append(out, cobra.CompletionWithDesc(c.Name, c.Summary))
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			text, err := Help(f.Registry, args)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(f.IO.Out, text)
			return err
		},
	})
	root.Version = Version()
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print acli's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(f.IO.Out, Version())
			return err
		},
	})
	root.AddCommand(&cobra.Command{
		Use:       "completion bash|zsh|fish",
		Short:     "Print a shell completion script",
		Long:      completionHelp,
		ValidArgs: []cobra.Completion{"bash", "zsh", "fish"},
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("completion: name one shell: bash, zsh or fish (e.g. acli completion bash)")
			}
			return nil
		},
		DisableFlagsInUseLine: true,
		RunE: func(cc *cobra.Command, args []string) error {
			switch args[0] {
			case "bash":
				if _, err := io.WriteString(f.IO.Out, bashWordsShim); err != nil {
					return err
				}
				return root.GenBashCompletionV2(f.IO.Out, true)
			case "zsh":
				return root.GenZshCompletion(f.IO.Out)
			case "fish":
				return root.GenFishCompletion(f.IO.Out, true)
			}
			return usageErrorf("completion: unknown shell %q%s", args[0], suggest(args[0], []string{"bash", "zsh", "fish"}))
		},
	})
	if c, ok := f.Registry.Lookup(firstWord(root, args)); ok && args != nil {
		root.AddCommand(f.leaf(c, g, st))
		return root
	}
	for _, c := range f.Registry.Commands() {
		root.AddCommand(f.leaf(c, g, st))
	}
	f.addFanoutCommands(root, g) // hostssh, allssh: flags, not the acli grammar
	return root
}

func (f *Factory) leaf(c *Command, g *Globals, st *runState) *cobra.Command {
	return &cobra.Command{
		Use:   c.Name,
		Short: c.Summary,
		RunE: func(cc *cobra.Command, args []string) error {
			inv, err := c.Parse(args)
			if err != nil {
				return err
			}
			p := f.printer(*g, st.inShell)
			st.printer = p
			return f.Run(cc.Context(), inv, *g, p)
		},
		ValidArgsFunction: func(cc *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return f.shellComplete(cc.Context(), c, args, toComplete, *g)
		},
	}
}

// Run runs a parsed invocation: the --timeout deadline, expansion of
// globs and ranges, confirmation, then the command's run function.
func (f *Factory) Run(ctx context.Context, inv *Invocation, g Globals, p *render.Printer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if g.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.Timeout)
		defer cancel()
	}
	if g.Watch && !inv.Cmd.Watch {
		return usageErrorf("--watch: %s cannot watch; vm.list and host.list can", inv.Cmd.Name)
	}
	r := &Req{Cmd: inv.Cmd, Inv: inv, IO: f.IO, Globals: g, Printer: p, f: f}
	if err := r.expand(ctx); err != nil {
		return err
	}
	if err := r.confirm(); err != nil {
		return err
	}
	err := client.Wrap(inv.Cmd.Run(ctx, r))
	var ce *render.ColumnError
	if errors.As(err, &ce) {
		return usageErrorf("%s", ce.Msg)
	}
	return lostConnection(err, g.Server)
}

// lostConnection rewords a connection that failed after it was made (the
// shell outlives clusterd; clusterd restarts mid-command): where, why in
// a word, and what to check, instead of gRPC's transport text.
func lostConnection(err error, addr string) error {
	var ae *client.Error
	var ue *client.UnreachableError
	if !errors.As(err, &ae) || ae.Code != client.ExitUnreachable || errors.As(err, &ue) {
		return err
	}
	msg := ae.Msg
	for _, cause := range []string{"connection refused", "connection reset by peer", "no route to host", "EOF", "i/o timeout"} {
		if strings.Contains(msg, cause) {
			msg = cause
			break
		}
	}
	cp := *ae
	cp.Msg = fmt.Sprintf("lost the connection to clusterd at %s (%s); once it answers again, task.list shows what ran", addr, msg)
	return &cp
}

// scriptFile opens the script "acli FILE" names ("-": standard input).
func scriptFile(name string, stdin io.Reader) (io.Reader, func(), error) {
	if name == "-" {
		return stdin, func() {}, nil
	}
	fi, err := os.Stat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, nil, errors.New("not a file")
	}
	fh, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return fh, func() { _ = fh.Close() }, nil
}

// checkServer refuses a --server (ACLI_SERVER) that is no host:port list,
// before anything dials: a usage error, not an unreachable cluster.
func checkServer(list string) error {
	if list == "" {
		return nil // the context's server, else the default
	}
	for _, s := range strings.Split(list, ",") {
		if strings.Contains(s, "://") {
			continue // a URL form the client resolves itself
		}
		host, port, err := net.SplitHostPort(s)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return usageErrorf("server address %q (--server or ACLI_SERVER) is not host:port, e.g. 127.0.0.1:2030", s)
		}
	}
	return nil
}

// shellComplete serves cobra's hidden __complete command for the bash, zsh
// and fish scripts, from the same registry logic as the interactive shell.
func (f *Factory) shellComplete(ctx context.Context, c *Command, args []string, toComplete string, g Globals) ([]cobra.Completion, cobra.ShellCompDirective) {
	if ctx == nil {
		ctx = context.Background()
	}
	names := func(k Kind) []Entity {
		// Completion must never hang a shell: a short budget, silence on error.
		cctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		defer cancel()
		g.Timeout = 500 * time.Millisecond
		cl, err := f.Client(cctx, g)
		if err != nil {
			return nil
		}
		es, err := ListEntities(cctx, cl, k)
		if err != nil {
			return nil
		}
		return es
	}
	cands, offset := c.Complete(args, toComplete, names)
	dir := cobra.ShellCompDirectiveNoFileComp
	out := make([]cobra.Completion, 0, len(cands))
	for _, cd := range cands {
		text := toComplete[:offset] + cd.Text
		if strings.HasSuffix(text, "=") || strings.HasSuffix(text, ",") {
			dir |= cobra.ShellCompDirectiveNoSpace
		}
		out = append(out, cobra.CompletionWithDesc(text, cd.Description))
	}
	return out, dir
}

// firstWord returns the first argument that is neither a flag nor a flag's
// value.
func firstWord(root *cobra.Command, args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			return a
		}
		if strings.Contains(a, "=") {
			continue
		}
		name := strings.TrimLeft(a, "-")
		fl := root.PersistentFlags().Lookup(name)
		if fl == nil && len(name) == 1 {
			fl = root.PersistentFlags().ShorthandLookup(name)
		}
		if fl != nil && fl.NoOptDefVal == "" {
			i++ // the flag's value
		}
	}
	return ""
}
