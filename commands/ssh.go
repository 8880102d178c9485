package commands

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/fanout"
)

// IdentityEnv names a private key offered to every host by hostssh and
// allssh, after any -i (make demo points it at the simulated cluster's
// client key).
const IdentityEnv = "ACLI_SSH_IDENTITY"

// FanoutCommand describes hostssh or allssh for help and completion. They
// are not registry commands: they take flags and a shell command, not the
// acli grammar (namespace.action key=value), so the parser never sees them.
type FanoutCommand struct {
	Name    string
	Style   fanout.Style
	Summary string
}

// FanoutCommands are the SSH fan-out commands, in help order.
var FanoutCommands = []FanoutCommand{
	{Name: "hostssh", Style: fanout.StyleHostSSH, Summary: "run a shell command on every hypervisor host over SSH"},
	{Name: "allssh", Style: fanout.StyleAllSSH, Summary: "run a shell command on every CVM over SSH (the local one last)"},
}

// LookupFanout finds hostssh or allssh by name.
func LookupFanout(name string) (FanoutCommand, bool) {
	for _, c := range FanoutCommands {
		if c.Name == name {
			return c, true
		}
	}
	return FanoutCommand{}, false
}

// FanoutHelp is the text of "acli help hostssh" and "hostssh --help".
func FanoutHelp(fc FanoutCommand) string {
	cmd := fanout.Command{Style: fc.Style}
	fs := cmd.FlagSet(fanout.NewFlags(fc.Style))
	return fmt.Sprintf("%s: %s\n\n%s\nTargets: hypervisor (hostssh) or CVM (allssh) addresses from clusterd's host.list, with\n"+
		"the SSH ports and host keys clusterd publishes, unless --hosts or --hosts-file is given.\n"+
		"Published keys are trusted only from a clusterd reached over TLS or on loopback, and are\n"+
		"pinned on first use in the cluster's known_hosts (known_hosts/CLUSTER-UUID beside acli's\n"+
		"config file); a key that contradicts known_hosts or its pin is refused.\n"+
		"%s, when set, is a private key offered after -i.\n\n%s\nExamples:\n  acli hostssh \"virsh list\"\n  acli allssh -o json hostname\n  acli hostssh --hosts 10.0.0.[1-4] --command-timeout 10s uptime\n",
		fc.Name, fc.Summary, cmd.Help(fs.FlagUsages()), IdentityEnv, fanoutGlobalsHelp)
}

// fanoutGlobalsHelp lists the global flags that matter to the fan-out.
const fanoutGlobalsHelp = `Global flags:
      --server host:port   clusterd address, or a comma-separated list of managers (env ACLI_SERVER)
      --timeout duration   limit for asking clusterd for the targets
      --token string       bearer token for clusterd (env ACLI_TOKEN)
`

// fanout is the fan-out command bound to this factory: targets and the
// default identity come from clusterd and the environment.
func (f *Factory) fanout(style fanout.Style, g *Globals) fanout.Command {
	return fanout.Command{
		Style:      style,
		Source:     f.fanoutTargets(g),
		SourceExit: func(err error) int { return client.ExitCode(err) },
		Prepare: func(fl *fanout.Flags) error {
			if f.Getenv == nil {
				return nil
			}
			id := f.Getenv(IdentityEnv)
			if id == "" {
				return nil
			}
			if _, err := os.Stat(id); err != nil {
				return fmt.Errorf("%s=%s: %v (unset it or point it at a private key)", IdentityEnv, id, unwrapPathError(err))
			}
			fl.IdentityFiles = append(fl.IdentityFiles, id)
			return nil
		},
	}
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// fanoutTargets asks clusterd for the hosts; --timeout bounds that call.
func (f *Factory) fanoutTargets(g *Globals) fanout.TargetSource {
	return func(ctx context.Context, style fanout.Style) ([]fanout.Target, error) {
		if g.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, g.Timeout)
			defer cancel()
		}
		c, err := f.Client(ctx, *g)
		if err != nil {
			return nil, err
		}
		resp, err := c.Host.ListHosts(ctx, &acliv1.ListHostsRequest{})
		if err != nil {
			return nil, client.Wrap(err)
		}
		ts := SSHTargets(resp.Hosts, style, fanout.IsLocalAddress)
		if o, err := f.Options(*g); err != nil || !publishedKeysTrusted(o) {
			// Keys from an unauthenticated, non-local clusterd could be
			// anyone's: only known_hosts decides then.
			for i := range ts {
				ts[i].HostKeys = nil
			}
		} else if pin, err := f.pinFile(ctx, c); err != nil {
			return nil, err
		} else {
			for i := range ts {
				ts[i].PinFile = pin
			}
		}
		if len(ts) == 0 {
			what := "hypervisor"
			if style == fanout.StyleAllSSH {
				what = "CVM"
			}
			return nil, client.Errorf(client.ExitNotFound, "clusterd lists no host with a %s IP; give --hosts", what)
		}
		return ts, nil
	}
}

// pinFile is the cluster's own known_hosts, beside acli's config file
// (known_hosts/CLUSTER-UUID): the host keys clusterd publishes are pinned
// there on first use, so a key that changes later is refused even when
// clusterd publishes it. A new cluster on the same addresses (a fresh sim)
// starts a file of its own. "" when acli has no config directory.
func (f *Factory) pinFile(ctx context.Context, c *client.Client) (string, error) {
	if f.Getenv == nil {
		return "", nil
	}
	cfg := client.ConfigPath(f.Getenv)
	if cfg == "" {
		return "", nil
	}
	cl, err := c.Cluster.GetCluster(ctx, &acliv1.GetClusterRequest{})
	if err != nil {
		return "", client.Wrap(err)
	}
	id, err := uuid.Parse(cl.GetUuid())
	if err != nil {
		return "", fmt.Errorf("clusterd names its cluster %q, not a UUID", cl.GetUuid())
	}
	return filepath.Join(filepath.Dir(cfg), "known_hosts", id.String()), nil
}

// SSHTargets turns host records into fan-out targets: hypervisor
// addresses (hostssh) or CVM addresses (allssh, the local CVM last), in
// host.list order, with the published SSH port and host key of each.
func SSHTargets(hosts []*acliv1.Host, style fanout.Style, isLocal func(string) bool) []fanout.Target {
	var ts []fanout.Target
	for _, h := range hosts {
		t := fanout.Target{Host: h.GetHypervisorIp(), Port: int(h.GetSshPort()), HostKeys: keyList(h.GetSshHostKey())}
		if style == fanout.StyleAllSSH {
			t = fanout.Target{Host: h.GetCvmIp(), Port: int(h.GetCvmSshPort()), HostKeys: keyList(h.GetCvmSshHostKey())}
		}
		if t.Host != "" {
			ts = append(ts, t)
		}
	}
	if style == fanout.StyleAllSSH {
		ts = fanout.LocalLast(ts, isLocal)
	}
	return ts
}

// publishedKeysTrusted reports whether the host keys clusterd publishes
// came over a connection that proves who answered: TLS with a verified
// server certificate, or a clusterd on this machine's loopback.
func publishedKeysTrusted(o client.Options) bool {
	if o.TLS() {
		return true
	}
	for _, a := range client.SplitServers(o.Addr) {
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

func keyList(k string) []string {
	if strings.TrimSpace(k) == "" {
		return nil
	}
	return []string{k}
}

// fanoutCobra builds hostssh or allssh for the cobra tree. Flag parsing
// stops at the first word of the remote command (as with ssh), so
// "acli hostssh ls -l /tmp" works unquoted; -o is the command's own
// (text or json) and shadows the global one.
func (f *Factory) fanoutCobra(fc FanoutCommand, g *Globals) *cobra.Command {
	fl := fanout.NewFlags(fc.Style)
	if g.Output == "json" {
		fl.Output = "json" // a shell started with -o json
	}
	cmd := f.fanout(fc.Style, g)
	cc := &cobra.Command{
		Use:   fc.Name + ` [flags] "<command>"`,
		Short: fc.Summary,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cc *cobra.Command, args []string) error {
			ctx := cc.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			// Ctrl-C or SIGTERM stop every session and still print the
			// summary (exit 130); a second Ctrl-C kills at once.
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			context.AfterFunc(ctx, stop)
			if code := cmd.Exec(ctx, fl, args, f.IO.Out, f.IO.Err); code != 0 {
				return ExitStatus(code)
			}
			return nil
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	fs := cc.Flags()
	fs.SetInterspersed(false)
	fl.Bind(fs)
	cc.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%s: %s", fc.Name, fanout.FlagError(err, c.Flags()))
	})
	cc.SetHelpFunc(func(*cobra.Command, []string) {
		_, _ = fmt.Fprint(f.IO.Out, FanoutHelp(fc))
	})
	return cc
}

// addFanoutCommands adds hostssh and allssh to a cobra tree.
func (f *Factory) addFanoutCommands(root *cobra.Command, g *Globals) {
	for _, fc := range FanoutCommands {
		root.AddCommand(f.fanoutCobra(fc, g))
	}
}

// CompleteFanout completes the shell line words+partial when it is, or
// starts, hostssh or allssh: the names as the first word, then their flags
// until the remote command begins (nothing is offered inside it).
func CompleteFanout(words []string, partial string) ([]Suggestion, bool) {
	if len(words) == 0 {
		var out []Suggestion
		for _, fc := range FanoutCommands {
			if partial != "" && strings.HasPrefix(fc.Name, partial) {
				out = append(out, Suggestion{Text: fc.Name, Description: fc.Summary})
			}
		}
		return out, false
	}
	fc, ok := LookupFanout(words[0])
	if !ok {
		return nil, false
	}
	fs := fanout.Command{Style: fc.Style}.FlagSet(fanout.NewFlags(fc.Style))
	// Walk the flags given so far; the first other word starts the command.
	for i := 1; i < len(words); i++ {
		w := words[i]
		if w == "--" || !strings.HasPrefix(w, "-") || w == "-" {
			return nil, true
		}
		if strings.Contains(w, "=") {
			continue
		}
		var fl *pflag.Flag
		if strings.HasPrefix(w, "--") {
			fl = fs.Lookup(w[2:])
		} else {
			fl = fs.ShorthandLookup(w[len(w)-1:])
		}
		if fl != nil && fl.NoOptDefVal == "" {
			i++ // its value
		}
	}
	if !strings.HasPrefix(partial, "-") {
		return nil, true
	}
	var out []Suggestion
	fs.VisitAll(func(fl *pflag.Flag) {
		if name := "--" + fl.Name; strings.HasPrefix(name, partial) {
			out = append(out, Suggestion{Text: name, Description: fl.Usage})
		}
	})
	return out, true
}
