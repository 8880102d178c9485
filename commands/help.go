package commands

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// Usage is the one-line synopsis: vm.create <name>... [memory=<size>] ...
func (c *Command) Usage() string {
	parts := []string{c.Name}
	for _, a := range c.Args {
		s := "<" + a.Name + ">"
		if a.Many {
			s += "..."
		}
		if a.Optional {
			s = "[" + s + "]"
		}
		parts = append(parts, s)
	}
	for _, k := range c.Keys {
		s := k.Name + "=<" + k.Type.String() + ">"
		if !k.Required {
			s = "[" + s + "]"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// argHelp describes a positional, including what patterns it accepts.
func (a *Arg) argHelp() string {
	h := a.Help
	switch {
	case a.Generate && a.Many:
		h += "; a range like web[01..20] makes several"
	case a.Many:
		h += "; name, UUID, comma list, glob (web*) or range (web[01..20])"
	}
	return strings.TrimPrefix(h, "; ")
}

// keyDefault is the default column of help.
func (k *Key) keyDefault() string {
	switch {
	case k.Required:
		return "required"
	case k.Default != "":
		return "default " + k.Default
	}
	return ""
}

// keyHelp is the help column, with enum values and an example.
func (k *Key) keyHelp() string {
	h := k.Help
	if k.Type == TypeEnum {
		var vals []string
		for _, e := range k.Enum {
			v := e.Name
			if len(e.Aliases) > 0 {
				v += " (" + strings.Join(e.Aliases, ", ") + ")"
			}
			vals = append(vals, v)
		}
		h += "; one of " + strings.Join(vals, ", ")
	}
	if ex := k.example(); ex != "" && k.Type != TypeEnum && k.Type != TypeBool {
		h += "; e.g. " + k.Name + "=" + ex
	}
	return h
}

// completionHelp is the help of "acli completion".
const completionHelp = `completion: Print a shell completion script
Entity names complete live from clusterd. The bash script works without the
bash-completion package; make install puts all three where the shells look.

Usage:
  acli completion bash|zsh|fish

  source <(acli completion bash)                              # bash, this session
  acli completion bash > /etc/bash_completion.d/acli          # bash, every session
  acli completion zsh > "${fpath[1]}/_acli"                   # zsh
  acli completion fish > ~/.config/fish/completions/acli.fish # fish`

// CommandHelp is the text of "acli help vm.create" and "vm.create --help".
func CommandHelp(c *Command) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %s\n\nUsage:\n  acli [global flags] %s\n", c.Name, c.Summary, c.Usage())
	if c.Description != "" {
		fmt.Fprintf(&sb, "\n%s\n", strings.TrimSpace(c.Description))
	}
	if len(c.Args) > 0 {
		sb.WriteString("\nArguments:\n")
		tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
		for _, a := range c.Args {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", a.Name, a.Kind, a.argHelp())
		}
		_ = tw.Flush()
	}
	if len(c.Keys) > 0 {
		sb.WriteString("\nKeys:\n")
		tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
		for _, k := range c.Keys {
			fmt.Fprintf(tw, "  %s=\t%s\t%s\t%s\n", k.Name, k.Type, k.keyDefault(), k.keyHelp())
		}
		_ = tw.Flush()
	}
	if c.Destructive != "" {
		sb.WriteString("\nAsks for confirmation on a terminal; -y answers yes (required without a terminal).\n")
	}
	if len(c.Examples) > 0 {
		sb.WriteString("\nExamples:\n")
		for _, e := range c.Examples {
			fmt.Fprintf(&sb, "  acli %s\n", e)
		}
	}
	return sb.String()
}

// NamespaceHelp lists a namespace's commands.
func NamespaceHelp(r *Registry, ns *Namespace) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %s\n\nCommands:\n", ns.Name, ns.Summary)
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	for _, c := range r.InNamespace(ns.Name) {
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Summary)
	}
	_ = tw.Flush()
	fmt.Fprintf(&sb, "\nSee: acli help <command>\n")
	return sb.String()
}

// GlobalFlagsHelp documents the flags given before the command.
const GlobalFlagsHelp = `Global flags (before the command):
  -o, --output table|json|yaml|csv  output format (json: {"data": ..., "error": null, "status": 0});
                                    the default is acli's (lists in its columns, *.get as protobuf
                                    text); also wide (every column; *.get as a readable block),
                                    block, json-pretty, name and value
  -c, --columns col,...             columns to show, by header or JSON key
      --sort-by col                 order rows by this column
      --jq expr                     print the JSON result through a jq expression
  -w, --watch                       vm.list, host.list: then print each row that changes or goes, until Ctrl-C
  -y, --yes                         answer yes to confirmations
      --server host:port[,...]      clusterd address, or the cluster's managers to fail over between
                                    (env ACLI_SERVER, default 127.0.0.1:2030)
      --timeout duration            give up after this long, e.g. 30s; waiting tasks keep running (exit 7)
      --no-headers                  omit table and CSV headers
      --token string                bearer token for clusterd (env ACLI_TOKEN)
`

// ExitCodesHelp documents the exit codes.
const ExitCodesHelp = `Exit codes:
  0 ok  1 failed  2 usage/bad input  3 not found  4 permission denied
  5 refused by a precondition or conflict  6 clusterd unreachable  7 timed out waiting
`

// RootHelp is the text of "acli help".
func RootHelp(r *Registry) string {
	var sb strings.Builder
	sb.WriteString("acli: manage hyperconverged KVM clusters\n\nUsage:\n")
	sb.WriteString("  acli [global flags] <namespace>.<action> [positional ...] [key=value ...]\n")
	sb.WriteString("  acli                 interactive shell (<acropolis> prompt) on a terminal;\n")
	sb.WriteString("                       without one, commands are read from stdin line by line\n\nNamespaces:\n")
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	for _, ns := range r.Namespaces {
		fmt.Fprintf(tw, "  %s\t%s\n", ns.Name, ns.Summary)
	}
	_ = tw.Flush()
	sb.WriteString("\nOther commands:\n")
	for _, fc := range FanoutCommands {
		fmt.Fprintf(tw, "  %s [flags] \"<command>\"\t%s\n", fc.Name, fc.Summary)
	}
	fmt.Fprintf(tw, "  help [namespace|command]\tshow help\n  completion bash|zsh|fish\tprint a shell completion script\n")
	_ = tw.Flush()
	sb.WriteString("\n")
	sb.WriteString(GlobalFlagsHelp + "\n" + ExitCodesHelp)
	sb.WriteString("\nExamples:\n  acli host.list\n  acli vm.create web[01..03] memory=4G num_vcpus=2\n  acli -o json vm.list power_state=on\n  acli help vm\n")
	return sb.String()
}

// Help resolves "acli help [topic]".
func Help(r *Registry, args []string) (string, error) {
	if len(args) == 0 {
		return RootHelp(r), nil
	}
	topic := strings.TrimSuffix(args[0], ".")
	if ns, ok := r.Namespace(topic); ok {
		return NamespaceHelp(r, ns), nil
	}
	if fc, ok := LookupFanout(topic); ok {
		return FanoutHelp(fc), nil
	}
	switch topic {
	case "completion":
		return completionHelp + "\n", nil
	case "version":
		return "version: Print acli's version\n\nUsage:\n  acli version\n  acli --version\n", nil
	}
	c, err := r.Find(topic)
	if err != nil {
		return "", err
	}
	return CommandHelp(c), nil
}

// Markdown is the reference page of a command (docs/reference/<name>.md).
func Markdown(c *Command) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# %s\n\n%s\n\n## Usage\n\n```\nacli [global flags] %s\n```\n", c.Name, c.Summary, c.Usage())
	if c.Description != "" {
		fmt.Fprintf(&sb, "\n%s\n", strings.TrimSpace(c.Description))
	}
	if len(c.Args) > 0 {
		sb.WriteString("\n## Arguments\n\n| Name | Entity | Description |\n|---|---|---|\n")
		for _, a := range c.Args {
			fmt.Fprintf(&sb, "| `%s` | %s | %s |\n", a.Name, a.Kind, mdEscape(a.argHelp()))
		}
	}
	if len(c.Keys) > 0 {
		sb.WriteString("\n## Keys\n\n| Key | Type | Default | Description |\n|---|---|---|---|\n")
		for _, k := range c.Keys {
			fmt.Fprintf(&sb, "| `%s=` | %s | %s | %s |\n", k.Name, k.Type, k.keyDefault(), mdEscape(k.keyHelp()))
		}
	}
	if c.Destructive != "" {
		sb.WriteString("\nAsks for confirmation on a terminal; `-y` answers yes (required without a terminal).\n")
	}
	if len(c.Examples) > 0 {
		sb.WriteString("\n## Examples\n\n```\n")
		for _, e := range c.Examples {
			fmt.Fprintf(&sb, "acli %s\n", e)
		}
		sb.WriteString("```\n")
	}
	sb.WriteString("\n## Global flags\n\n```\n" + GlobalFlagsHelp + "```\n\n## Exit codes\n\n```\n" + ExitCodesHelp + "```\n")
	return sb.String()
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
