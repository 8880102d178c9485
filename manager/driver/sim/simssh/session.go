package simssh

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	glssh "github.com/gliderlabs/ssh"
)

// The shims answer from the session environment, which the server fills
// per session; no callback channel is needed and nothing outlives the
// session.
const hostnameShim = `#!/bin/sh
# hostname of a simulated acli cluster machine (set per SSH session).
case "$1" in
"" | -f | --fqdn | --long) echo "$HOSTNAME" ;;
-s | --short) echo "${HOSTNAME%%.*}" ;;
-i | -I | --ip-address | --all-ip-addresses) echo "$ACLI_SIM_IP" ;;
*) echo "hostname: cannot change the name of a simulated host" >&2; exit 1 ;;
esac
`

const virshShim = `#!/bin/sh
# virsh of a simulated acli hypervisor: domains come from the cluster model.
usage() { echo "usage: virsh list [--all] [--name] | virsh hostname" >&2; exit 1; }
# Skip connection options such as -c qemu:///system or -r.
while [ $# -gt 0 ]; do
	case "$1" in
	-c | --connect) shift 2 ;;
	-r | --readonly | -q | --quiet) shift ;;
	*) break ;;
	esac
done
case "$1" in
list)
	shift
	all=; names=
	for a in "$@"; do
		case "$a" in
		--all | -a) all=_ALL ;;
		--name) names=1 ;;
		--state-running) ;;
		*) echo "error: command 'list' doesn't support option $a" >&2; exit 1 ;;
		esac
	done
	if [ -n "$names" ]; then eval "printf '%s' \"\$ACLI_SIM_VIRSH_NAMES$all\""
	else eval "printf '%s' \"\$ACLI_SIM_VIRSH_LIST$all\""; fi ;;
hostname) echo "$HOSTNAME" ;;
"" | help) usage ;;
*) echo "error: unknown command: '$1'" >&2; exit 1 ;;
esac
`

// cvmVirshShim keeps the machine's own virsh, if any, out of CVM sessions.
const cvmVirshShim = `#!/bin/sh
echo "virsh: not available on a controller VM; run it on hypervisors with hostssh" >&2
exit 127
`

// writeShims (re)writes the per-kind shim directories and returns them.
func writeShims(binDir string) (map[Kind]string, error) {
	dirs := map[Kind]string{KindHost: filepath.Join(binDir, "host"), KindCVM: filepath.Join(binDir, "cvm")}
	files := map[string]string{
		filepath.Join(dirs[KindHost], "hostname"): hostnameShim,
		filepath.Join(dirs[KindHost], "virsh"):    virshShim,
		filepath.Join(dirs[KindCVM], "hostname"):  hostnameShim,
		filepath.Join(dirs[KindCVM], "virsh"):     cvmVirshShim,
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("simssh: %w", err)
		}
	}
	for f, body := range files {
		tmp := f + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o755); err != nil {
			return nil, fmt.Errorf("simssh: %w", err)
		}
		if err := os.Rename(tmp, f); err != nil {
			return nil, fmt.Errorf("simssh: %w", err)
		}
	}
	return dirs, nil
}

// env is the session environment: a clean one naming the simulated
// machine, not the manager's own.
func (s *Server) env(t Target, user string) []string {
	env := []string{
		"PATH=" + s.shims[t.Kind] + ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"HOME=" + s.home,
		"USER=" + user,
		"LOGNAME=" + user,
		"SHELL=/bin/sh",
		"LANG=C.UTF-8",
		"HOSTNAME=" + t.Name,
		"ACLI_SIM_IP=" + t.IP,
		"ACLI_SIM_KIND=" + string(t.Kind),
	}
	if t.Kind == KindHost {
		hostIP := t.HostIP
		if hostIP == "" {
			hostIP = t.IP
		}
		var vms []VMInfo
		if s.lookup != nil {
			vms = s.lookup(hostIP)
		}
		env = append(env,
			"ACLI_SIM_VIRSH_LIST="+FormatVirshList(vms, false),
			"ACLI_SIM_VIRSH_LIST_ALL="+FormatVirshList(vms, true),
			"ACLI_SIM_VIRSH_NAMES="+formatNames(vms, false),
			"ACLI_SIM_VIRSH_NAMES_ALL="+formatNames(vms, true),
		)
	}
	return env
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

// run executes command in sh -c and returns its exit status. The command
// runs in its own process group so a closed session kills pipelines too.
func (s *Server) run(sess glssh.Session, t Target, command string) int {
	cmd := exec.CommandContext(sess.Context(), "/bin/sh", "-c", command)
	cmd.Env = s.env(t, sess.User())
	cmd.Dir = s.home
	cmd.Stdout, cmd.Stderr = sess, sess.Stderr()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A background child keeping stdout open must not hold the session.
	cmd.WaitDelay = time.Second
	// Stdin through an os.Pipe: exec then needs no copier of its own, so
	// a client that never closes stdin cannot keep Wait from returning.
	pr, pw, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(sess.Stderr(), "simssh: %v\n", err)
		return 255
	}
	cmd.Stdin = pr
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		fmt.Fprintf(sess.Stderr(), "simssh: %v\n", err)
		return 255
	}
	pr.Close()
	go func() {
		io.Copy(pw, sess)
		pw.Close()
	}()
	err = cmd.Wait()
	pw.Close()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		return 255
	}
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
