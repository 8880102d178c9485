package simssh

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"

	glssh "github.com/gliderlabs/ssh"
)

// vars are a session's shell variables: the simulated machine's, never
// the manager's environment.
func (s *Server) vars(t Target, user string) map[string]string {
	home := "/root"
	if user != "root" {
		home = "/home/" + user
	}
	return map[string]string{"HOSTNAME": t.Name, "USER": user, "LOGNAME": user, "HOME": home, "PWD": home,
		"SHELL": "/bin/sh", "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}
}

// node is the machine a session of t runs on.
func (s *Server) node(t Target, user string) *node {
	n := &node{t: t, user: user, since: s.started, dp: s.dataPath()}
	if t.Kind == KindHost && s.lookup != nil {
		hostIP := t.HostIP
		if hostIP == "" {
			hostIP = t.IP
		}
		n.vms = func() []VMInfo { return s.lookup(hostIP) }
	}
	return n
}

func (s *Server) handler(t Target) glssh.Handler {
	return func(sess glssh.Session) {
		command := sess.RawCommand()
		if strings.TrimSpace(command) == "" {
			fmt.Fprintf(sess.Stderr(), "%s is a simulated host: run a command, e.g. ssh %s hostname\n", t.Name, t.IP)
			sess.Exit(1)
			return
		}
		sess.Exit(s.run(sess, t, command))
	}
}

// signalNumbers are the SSH signal names a client may send.
var signalNumbers = map[glssh.Signal]int{glssh.SIGHUP: 1, glssh.SIGINT: 2, glssh.SIGQUIT: 3, glssh.SIGKILL: 9,
	glssh.SIGPIPE: 13, glssh.SIGALRM: 14, glssh.SIGTERM: 15, glssh.SIGUSR1: 10, glssh.SIGUSR2: 12}

// run runs command in the simulated shell and returns its exit status. A
// closed session or a signal from the client (Ctrl-C in hostssh) stops it.
func (s *Server) run(sess glssh.Session, t Target, command string) int {
	s.active.Add(1)
	defer s.active.Add(-1)
	ctx, cancel := context.WithCancel(sess.Context())
	defer cancel()
	sigs := make(chan glssh.Signal, 1)
	sess.Signals(sigs)
	defer sess.Signals(nil)
	var signalled atomic.Int32
	go func() {
		select {
		case sig := <-sigs:
			signalled.Store(int32(128 + max(signalNumbers[sig], 1)))
			cancel()
		case <-ctx.Done():
		}
	}()
	sh := &shell{m: s.node(t, sess.User()), vars: s.vars(t, sess.User())}
	status := sh.run(ctx, command, sess, sess.Stderr())
	if n := signalled.Load(); n != 0 {
		return int(n)
	}
	return status
}

// FormatVirshList renders VMs as `virsh list` (all=false: running and
// paused only) or `virsh list --all` does: running domains by ID, then
// inactive ones by name, columns sized to their content.
func FormatVirshList(vms []VMInfo, all bool) string {
	rows := [][3]string{{"Id", "Name", "State"}}
	for _, v := range sortVMs(vms, all) {
		id := "-"
		if v.ID > 0 {
			id = fmt.Sprint(v.ID)
		}
		rows = append(rows, [3]string{id, v.Name, v.State})
	}
	var w [3]int
	for _, r := range rows {
		for i, c := range r {
			w[i] = max(w[i], len(c))
		}
	}
	var b strings.Builder
	for i, r := range rows {
		line := fmt.Sprintf(" %-*s   %-*s   %-*s", w[0], r[0], w[1], r[1], w[2], r[2])
		b.WriteString(strings.TrimRight(line, " ") + "\n")
		if i == 0 {
			b.WriteString(strings.Repeat("-", len(line)+1) + "\n")
		}
	}
	b.WriteString("\n")
	return b.String()
}

func formatNames(vms []VMInfo, all bool) string {
	var b strings.Builder
	for _, v := range sortVMs(vms, all) {
		b.WriteString(v.Name + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

func sortVMs(vms []VMInfo, all bool) []VMInfo {
	var out []VMInfo
	for _, v := range vms {
		if all || v.ID > 0 {
			out = append(out, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.ID > 0) != (b.ID > 0) {
			return a.ID > 0
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Name < b.Name
	})
	return out
}
