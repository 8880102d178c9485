// Package fanout runs one command on many hosts over SSH in parallel
// (hostssh/allssh): bounded concurrency, per-host blocks in target order,
// honest aggregate status. It does not depend on the CLI framework; the CLI
// binds Options to its flags and supplies targets through a TargetSource.
package fanout

import (
	"os"
	"os/user"
	"path/filepath"
	"time"
)

// Style selects the banner printed above each host's block.
type Style int

const (
	// StyleHostSSH: "============= <ip> ============".
	StyleHostSSH Style = iota
	// StyleAllSSH: "================== <ip> =================".
	StyleAllSSH
)

// Banner returns the header line for label.
func (s Style) Banner(label string) string {
	if s == StyleAllSSH {
		return "================== " + label + " ================="
	}
	return "============= " + label + " ============"
}

// Defaults used when an Options field is zero.
const (
	DefaultFanout         = 32
	DefaultConnectTimeout = 5 * time.Second
)

// Options controls one fan-out run. The zero value reads nothing from the
// environment; DefaultOptions fills in the user's ~/.ssh and ssh-agent.
type Options struct {
	Targets []Target
	// User is the remote user; empty means ~/.ssh/config, then DefaultUser.
	User        string
	DefaultUser string
	// Port applies to targets without an explicit port; 0 means
	// ~/.ssh/config, then 22.
	Port int
	// IdentityFiles are private keys given with -i; they are offered first.
	IdentityFiles []string
	// KnownHostsFiles are checked besides ~/.ssh/known_hosts; the first one
	// (else ~/.ssh/known_hosts) receives keys recorded by AcceptNew.
	KnownHostsFiles []string
	// ReadOnlyKnownHostsFiles are trusted but never written (e.g.
	// /etc/ssh/ssh_known_hosts).
	ReadOnlyKnownHostsFiles []string
	// AcceptNew records keys of hosts not yet known; a changed key is still
	// refused.
	AcceptNew bool
	// InsecureIgnoreHostKey skips host key verification (and says so).
	InsecureIgnoreHostKey bool
	// Home is the directory holding .ssh (default identities, known_hosts,
	// config); empty disables all of them.
	Home string
	// SSHConfigFile is an OpenSSH client config to honour (User, Port,
	// IdentityFile per Host pattern); empty means none.
	SSHConfigFile string
	// AgentSocket is the ssh-agent socket; empty means no agent.
	AgentSocket string

	Fanout         int
	ConnectTimeout time.Duration
	// CommandTimeout bounds each remote command; 0 means no limit.
	CommandTimeout time.Duration

	Style Style
	// Gather folds hosts with identical output under one header.
	Gather bool
	// Silent writes no per-host blocks and no summary; the caller renders
	// the Result itself (e.g. -o json).
	Silent bool
	// MaxExit makes Result.Status the largest remote exit code.
	MaxExit bool
}

// DefaultOptions returns options that read the invoking user's ~/.ssh
// (identities, known_hosts, config), /etc/ssh/ssh_known_hosts and
// SSH_AUTH_SOCK, with user root for hostssh.
func DefaultOptions(style Style) Options {
	o := Options{
		Fanout:         DefaultFanout,
		ConnectTimeout: DefaultConnectTimeout,
		Style:          style,
		AgentSocket:    os.Getenv("SSH_AUTH_SOCK"),
	}
	if home, err := os.UserHomeDir(); err == nil {
		o.Home = home
		o.SSHConfigFile = filepath.Join(home, ".ssh", "config")
	}
	o.ReadOnlyKnownHostsFiles = []string{"/etc/ssh/ssh_known_hosts"}
	if style == StyleHostSSH {
		o.DefaultUser = "root"
	} else if u, err := user.Current(); err == nil {
		o.DefaultUser = u.Username
	}
	return o
}
