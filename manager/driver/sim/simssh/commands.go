package simssh

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// node is what the simulated shell knows of the machine it runs on.
type node struct {
	t     Target
	user  string
	vms   func() []VMInfo // the hypervisor's domains, read when virsh asks
	dp    DataPath        // sockets and the CVM domain; nil: none
	since time.Time       // "boot" time for uptime
}

// call is one command invocation.
type call struct {
	ctx  context.Context
	args []string // args[0] is the command's name
	in   io.Reader
	out  io.Writer
	errw io.Writer
	m    *node
	sh   *shell
}

func (c *call) printf(format string, a ...any) { fmt.Fprintf(c.out, format, a...) }

// fail prints "name: msg" on stderr and returns exit status code.
func (c *call) fail(code int, format string, a ...any) error {
	fmt.Fprintf(c.errw, c.args[0]+": "+format+"\n", a...)
	return exitError(code)
}

// Command is one command of the simulated shell.
type Command struct {
	// Kinds are the machines that have it; nil: every machine.
	Kinds []Kind
	// Usage is one line for help.
	Usage string
	Run   func(*call) error
	// Missing, when set, is what a machine not in Kinds says instead
	// (exit 127), e.g. virsh on a CVM.
	Missing string
}

// commands is THE table of the simulated shell; add a command with one
// entry.
var commands = map[string]Command{
	":":        {Usage: ": (does nothing)", Run: func(*call) error { return nil }},
	"true":     {Usage: "true", Run: func(*call) error { return nil }},
	"false":    {Usage: "false", Run: func(*call) error { return exitError(1) }},
	"echo":     {Usage: "echo [-n] [WORD...]", Run: runEcho},
	"hostname": {Usage: "hostname [-s|-f|-i|-I]", Run: runHostname},
	"uname":    {Usage: "uname [-a|-s|-n|-r|-m]", Run: runUname},
	"uptime":   {Usage: "uptime", Run: runUptime},
	"date": {Usage: "date", Run: func(c *call) error {
		c.printf("%s\n", time.Now().UTC().Format("Mon Jan _2 15:04:05 UTC 2006"))
		return nil
	}},
	"whoami":  {Usage: "whoami", Run: func(c *call) error { c.printf("%s\n", c.m.user); return nil }},
	"pwd":     {Usage: "pwd", Run: func(c *call) error { c.printf("%s\n", c.sh.vars["PWD"]); return nil }},
	"sleep":   {Usage: "sleep SECONDS", Run: runSleep},
	"cat":     {Usage: "cat [FILE...] (" + strings.Join(simFileNames(), ", ") + ")", Run: runCat},
	"netstat": {Usage: "netstat -n[a][l][t] (the iSCSI sockets)", Run: runNetstat},
	"ss":      {Usage: "ss -t[n][a][l] (the iSCSI sockets)", Run: runSs},
	"virsh": {Kinds: []Kind{KindHost}, Usage: virshUsage, Run: runVirsh,
		Missing: "virsh: not available on a controller VM; run it on hypervisors with hostssh"},
	"grep": {Usage: "grep [-v] [-c] [-i] TEXT (fixed text, from a pipe)", Run: runGrep},
	"wc":   {Usage: "wc [-l|-w|-c] (from a pipe)", Run: runWc},
	"head": {Usage: "head [-n N] (from a pipe)", Run: func(c *call) error { return runHeadTail(c, true) }},
	"tail": {Usage: "tail [-n N] (from a pipe)", Run: func(c *call) error { return runHeadTail(c, false) }},
	"sort": {Usage: "sort [-r] (from a pipe)", Run: runSort},
}

// The commands that read the table join it here (an initializer may not
// refer to itself).
func init() {
	commands["command"] = Command{Usage: "command -v NAME", Run: runCommandV}
	commands["which"] = Command{Usage: "which NAME", Run: runCommandV}
	commands["help"] = Command{Usage: "help", Run: runHelp}
}

// lookupCommand finds name for a machine of kind k.
func lookupCommand(name string, k Kind) (Command, bool) {
	c, ok := commands[name]
	if !ok {
		return Command{}, false
	}
	if c.Kinds != nil && !slices.Contains(c.Kinds, k) {
		if c.Missing == "" {
			return Command{}, false
		}
		msg := c.Missing
		return Command{Run: func(c *call) error { fmt.Fprintln(c.errw, msg); return exitError(127) }}, true
	}
	return c, true
}

func runEcho(c *call) error {
	args, nl := c.args[1:], "\n"
	if len(args) > 0 && args[0] == "-n" {
		args, nl = args[1:], ""
	}
	c.printf("%s%s", strings.Join(args, " "), nl)
	return nil
}

func runHostname(c *call) error {
	if len(c.args) > 2 {
		return c.fail(1, "cannot change the name of a simulated host")
	}
	opt := ""
	if len(c.args) == 2 {
		opt = c.args[1]
	}
	switch opt {
	case "", "-f", "--fqdn", "--long":
		c.printf("%s\n", c.m.t.Name)
	case "-s", "--short":
		short, _, _ := strings.Cut(c.m.t.Name, ".")
		c.printf("%s\n", short)
	case "-i", "-I", "--ip-address", "--all-ip-addresses":
		c.printf("%s\n", c.m.t.IP)
	default:
		return c.fail(1, "cannot change the name of a simulated host")
	}
	return nil
}

const simKernel = "5.10.0-acli-sim"

func runUname(c *call) error {
	opt := "-s"
	if len(c.args) > 1 {
		opt = c.args[1]
	}
	switch opt {
	case "-s":
		c.printf("Linux\n")
	case "-n":
		c.printf("%s\n", c.m.t.Name)
	case "-r":
		c.printf("%s\n", simKernel)
	case "-m":
		c.printf("x86_64\n")
	case "-a":
		c.printf("Linux %s %s #1 SMP x86_64 GNU/Linux\n", c.m.t.Name, simKernel)
	default:
		return c.fail(1, "invalid option %q; use -a, -s, -n, -r or -m", opt)
	}
	return nil
}

func (m *node) uptime() time.Duration { return time.Since(m.since).Truncate(time.Second) }

func runUptime(c *call) error {
	up := c.m.uptime()
	days := int(up.Hours()) / 24
	hm := fmt.Sprintf("%2d:%02d", int(up.Hours())%24, int(up.Minutes())%60)
	if days > 0 {
		hm = fmt.Sprintf("%d days, %s", days, hm)
	}
	c.printf(" %s up %s,  1 user,  load average: 0.08, 0.03, 0.01\n", time.Now().UTC().Format("15:04:05"), hm)
	return nil
}

func runSleep(c *call) error {
	if len(c.args) != 2 {
		return c.fail(1, "usage: sleep SECONDS")
	}
	s, err := strconv.ParseFloat(strings.TrimSuffix(c.args[1], "s"), 64)
	if err != nil || s < 0 {
		return c.fail(1, "invalid time interval %q", c.args[1])
	}
	t := time.NewTimer(time.Duration(s * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.ctx.Done():
		return exitError(130)
	}
}

// simFiles are the files cat shows; everything else is not there.
var simFiles = map[string]func(m *node) string{
	"/etc/hostname": func(m *node) string { return m.t.Name + "\n" },
	"/etc/os-release": func(*node) string {
		return "PRETTY_NAME=\"acli simulated host\"\nNAME=\"acli-sim\"\nID=acli-sim\n"
	},
	"/proc/uptime": func(m *node) string {
		return fmt.Sprintf("%.2f %.2f\n", m.uptime().Seconds(), m.uptime().Seconds()*30)
	},
	"/proc/loadavg": func(*node) string { return "0.08 0.03 0.01 1/180 4242\n" },
	"/proc/version": func(*node) string { return "Linux version " + simKernel + " (acli simulated host)\n" },
}

func simFileNames() []string {
	var out []string
	for f := range simFiles {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func runCat(c *call) error {
	if len(c.args) == 1 {
		_, err := io.Copy(c.out, c.in)
		return err
	}
	status := 0
	for _, f := range c.args[1:] {
		gen, ok := simFiles[f]
		if !ok {
			fmt.Fprintf(c.errw, "cat: %s: not available on a simulated host (it has %s)\n", f, strings.Join(simFileNames(), ", "))
			status = 1
			continue
		}
		c.printf("%s", gen(c.m))
	}
	return exitError(status).orNil()
}

func (e exitError) orNil() error {
	if e == 0 {
		return nil
	}
	return e
}

const virshUsage = "virsh list [--all] [--name] | virsh destroy|start CVM-DOMAIN | virsh hostname"

// virshPower stops or starts the host's CVM domain; user VMs are powered
// through acli.
func (c *call) virshPower(domain string, on bool) error {
	var vms []VMInfo
	if c.m.vms != nil {
		vms = c.m.vms()
	}
	i := slices.IndexFunc(vms, func(v VMInfo) bool { return v.Name == domain })
	switch {
	case i < 0:
		fmt.Fprintf(c.errw, "error: failed to get domain '%s'\n", domain)
		return exitError(1)
	case !strings.HasSuffix(domain, "-CVM") || c.m.dp == nil:
		fmt.Fprintf(c.errw, "error: the simulated virsh powers only the CVM domain; power user VMs with acli vm.on/vm.off\n")
		return exitError(1)
	case on && vms[i].State == "running":
		fmt.Fprintf(c.errw, "error: Failed to start domain '%s'\nerror: Requested operation is not valid: domain is already running\n", domain)
		return exitError(1)
	case !on && vms[i].State != "running":
		fmt.Fprintf(c.errw, "error: Failed to destroy domain '%s'\nerror: Requested operation is not valid: domain is not running\n", domain)
		return exitError(1)
	}
	hostIP := c.m.t.HostIP
	if hostIP == "" {
		hostIP = c.m.t.IP
	}
	if err := c.m.dp.PowerCVM(hostIP, domain, on); err != nil {
		fmt.Fprintf(c.errw, "error: %v\n", err)
		return exitError(1)
	}
	if on {
		c.printf("Domain '%s' started\n\n", domain)
	} else {
		c.printf("Domain '%s' destroyed\n\n", domain)
	}
	return nil
}

func runVirsh(c *call) error {
	args := c.args[1:]
	// Skip connection options such as -c qemu:///system or -r.
	for len(args) > 0 {
		switch args[0] {
		case "-c", "--connect":
			args = args[min(2, len(args)):]
			continue
		case "-r", "--readonly", "-q", "--quiet":
			args = args[1:]
			continue
		}
		break
	}
	if len(args) == 0 || args[0] == "help" {
		return c.fail(1, "usage: "+virshUsage)
	}
	switch args[0] {
	case "destroy", "start":
		if len(args) != 2 {
			return c.fail(1, "usage: virsh %s DOMAIN", args[0])
		}
		return c.virshPower(args[1], args[0] == "start")
	case "list":
		all, names := false, false
		for _, a := range args[1:] {
			switch a {
			case "--all", "-a":
				all = true
			case "--name":
				names = true
			case "--state-running":
			default:
				fmt.Fprintf(c.errw, "error: command 'list' doesn't support option %s\n", a)
				return exitError(1)
			}
		}
		var vms []VMInfo
		if c.m.vms != nil {
			vms = c.m.vms()
		}
		if names {
			c.printf("%s", formatNames(vms, all))
		} else {
			c.printf("%s", FormatVirshList(vms, all))
		}
		return nil
	case "hostname":
		c.printf("%s\n", c.m.t.Name)
		return nil
	}
	fmt.Fprintf(c.errw, "error: unknown command: '%s'\n", args[0])
	return exitError(1)
}

// lines reads the command's input (a pipe) line by line.
func (c *call) lines() ([]string, error) {
	var out []string
	sc := bufio.NewScanner(c.in)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

func runGrep(c *call) error {
	invert, count, fold := false, false, false
	args := c.args[1:]
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && len(args[0]) > 1 {
		for _, f := range args[0][1:] {
			switch f {
			case 'v':
				invert = true
			case 'c':
				count = true
			case 'i':
				fold = true
			case 'F', 'e':
			default:
				return c.fail(2, "invalid option -%c; the simulated grep takes -v, -c, -i", f)
			}
		}
		args = args[1:]
	}
	if len(args) != 1 {
		return c.fail(2, "usage: grep [-v] [-c] [-i] TEXT (reads a pipe)")
	}
	pat := args[0]
	lines, err := c.lines()
	if err != nil {
		return err
	}
	n := 0
	for _, l := range lines {
		hay, needle := l, pat
		if fold {
			hay, needle = strings.ToLower(l), strings.ToLower(pat)
		}
		if strings.Contains(hay, needle) != invert {
			n++
			if !count {
				c.printf("%s\n", l)
			}
		}
	}
	if count {
		c.printf("%d\n", n)
	}
	if n == 0 {
		return exitError(1)
	}
	return nil
}

func runWc(c *call) error {
	data, err := io.ReadAll(c.in)
	if err != nil {
		return err
	}
	l, w, b := strings.Count(string(data), "\n"), len(strings.Fields(string(data))), len(data)
	switch opt := strings.Join(c.args[1:], " "); opt {
	case "-l":
		c.printf("%d\n", l)
	case "-w":
		c.printf("%d\n", w)
	case "-c":
		c.printf("%d\n", b)
	case "":
		c.printf("%7d %7d %7d\n", l, w, b)
	default:
		return c.fail(1, "invalid option %q; use -l, -w or -c", opt)
	}
	return nil
}

func runHeadTail(c *call, head bool) error {
	n := 10
	switch args := c.args[1:]; {
	case len(args) == 2 && args[0] == "-n":
		v, err := strconv.Atoi(args[1])
		if err != nil || v < 0 {
			return c.fail(1, "invalid number of lines %q", args[1])
		}
		n = v
	case len(args) == 1 && strings.HasPrefix(args[0], "-"):
		v, err := strconv.Atoi(args[0][1:])
		if err != nil || v < 0 {
			return c.fail(1, "invalid option %q", args[0])
		}
		n = v
	case len(args) != 0:
		return c.fail(1, "usage: %s [-n N] (reads a pipe)", c.args[0])
	}
	lines, err := c.lines()
	if err != nil {
		return err
	}
	if head {
		lines = lines[:min(n, len(lines))]
	} else {
		lines = lines[max(0, len(lines)-n):]
	}
	for _, l := range lines {
		c.printf("%s\n", l)
	}
	return nil
}

func runSort(c *call) error {
	lines, err := c.lines()
	if err != nil {
		return err
	}
	sort.Strings(lines)
	if len(c.args) > 1 && c.args[1] == "-r" {
		slices.Reverse(lines)
	}
	for _, l := range lines {
		c.printf("%s\n", l)
	}
	return nil
}

func runCommandV(c *call) error {
	args := c.args[1:]
	if c.args[0] == "command" {
		if len(args) != 2 || args[0] != "-v" {
			return c.fail(2, "only command -v NAME is available on a simulated host")
		}
		args = args[1:]
	}
	status := 0
	for _, name := range args {
		if _, ok := lookupCommand(name, c.m.t.Kind); ok && name != "help" {
			c.printf("/usr/bin/%s\n", name)
		} else if name == "exit" || name == "help" {
			c.printf("%s\n", name)
		} else {
			status = 1
		}
	}
	return exitError(status).orNil()
}

func runHelp(c *call) error {
	c.printf("%s is a simulated %s: its shell runs these commands (with ;, &&, || and |), nothing else.\n", c.m.t.Name, kindWord(c.m.t.Kind))
	var names []string
	for n, cmd := range commands {
		if cmd.Kinds == nil || slices.Contains(cmd.Kinds, c.m.t.Kind) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		c.printf("  %s\n", commands[n].Usage)
	}
	c.printf("  exit [N]\n")
	return nil
}

func kindWord(k Kind) string {
	if k == KindCVM {
		return "controller VM"
	}
	return "hypervisor"
}
