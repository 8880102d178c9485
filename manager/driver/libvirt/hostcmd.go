package libvirt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// The libvirt API changes no host interface (its interface driver is
// udev's, read-only, here and on Debian/Ubuntu), so bridges and uplinks
// change the way AHV's manage_ovs does: by running ovs-vsctl and ip on
// the host. A host reached over a local socket is this machine: the
// commands run there, in libvirtd's network namespace with its Open
// vSwitch environment. A qemu+ssh host runs them over SSH, with the
// credentials of its libvirt connection.

// hostShell runs a command on one host and returns its output.
type hostShell func(ctx context.Context, argv ...string) (string, error)

// shell is the command channel to h; its errors read after the host's name.
func (d *Driver) shell(h *acliv1.Host) (hostShell, error) {
	d.mu.Lock()
	mem := d.members[h.Uuid]
	d.mu.Unlock()
	if mem == nil {
		return nil, fmt.Errorf("has no libvirt connection (libvirt_uri %q)", h.LibvirtUri)
	}
	switch u := mem.uri; u.Transport {
	case TransportUnix:
		return localShell(u.Socket)
	case TransportSSH:
		return sshShell(u, d.cfg.Dial), nil
	default:
		return nil, fmt.Errorf("is reached over qemu+%s, which runs no command there; add it with a qemu+ssh URI", u.Transport)
	}
}

// localShell runs commands as libvirtd sees the machine: in the network
// namespace of the daemon behind socket (its peer credentials name it),
// with the OVS_* variables of its environment.
func localShell(socket string) (hostShell, error) {
	pid, err := peerPID(socket)
	if err != nil {
		return nil, fmt.Errorf("cannot be reached over its socket: %w", err)
	}
	var prefix, env []string
	self, _ := os.Readlink("/proc/self/ns/net")
	if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && ns != self {
		prefix = []string{"nsenter", "--net=/proc/" + strconv.Itoa(pid) + "/ns/net", "--"}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
		for _, kv := range bytes.Split(b, []byte{0}) {
			if bytes.HasPrefix(kv, []byte("OVS_")) {
				env = append(env, string(kv))
			}
		}
	}
	return func(ctx context.Context, argv ...string) (string, error) {
		args := append(append([]string(nil), prefix...), argv...)
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return commandResult(argv, out, err)
	}, nil
}

// peerPID is the process listening on a unix socket.
func peerPID(socket string) (int, error) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, fmt.Errorf("peer of %s: %w", socket, cerr)
	}
	return int(cred.Pid), nil
}

// sshShell runs each command in a session of its own SSH connection.
func sshShell(u *URI, o DialOptions) hostShell {
	return func(ctx context.Context, argv ...string) (string, error) {
		cfg := o.SSHConfig
		if cfg == nil {
			var err error
			if cfg, err = sshConfigFromURI(u); err != nil {
				return "", err
			}
		}
		if cfg.Timeout == 0 {
			c := *cfg
			c.Timeout = o.timeout()
			cfg = &c
		}
		client, err := ssh.Dial("tcp", u.Address(), cfg)
		if err != nil {
			return "", fmt.Errorf("ssh %s: %w", u.Address(), err)
		}
		defer client.Close()
		s, err := client.NewSession()
		if err != nil {
			return "", fmt.Errorf("ssh %s: %w", u.Address(), err)
		}
		defer s.Close()
		stop := context.AfterFunc(ctx, func() { client.Close() })
		defer stop()
		quoted := make([]string, len(argv))
		for i, a := range argv {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out, err := s.CombinedOutput(strings.Join(quoted, " "))
		return commandResult(argv, out, err)
	}
}

// exitError is a command that ran and failed.
type exitError struct {
	cmd  string
	code int
	out  string
}

func (e *exitError) Error() string {
	if e.out == "" {
		return fmt.Sprintf("%s: exit status %d", e.cmd, e.code)
	}
	return fmt.Sprintf("%s: %s", e.cmd, e.out)
}

func commandResult(argv []string, out []byte, err error) (string, error) {
	text := strings.TrimSpace(string(out))
	var ee *exec.ExitError
	var se *ssh.ExitError
	switch {
	case err == nil:
		return text, nil
	case errors.As(err, &ee):
		return text, &exitError{cmd: argv[0], code: ee.ExitCode(), out: text}
	case errors.As(err, &se):
		return text, &exitError{cmd: argv[0], code: se.ExitStatus(), out: text}
	}
	return text, fmt.Errorf("%s: %w", argv[0], err)
}

// exitCode is the status of a command that ran and failed (-1: it did not run).
func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return -1
}
