package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// HostStatus says how a host's run ended.
type HostStatus string

// Host outcomes. Failed and Timeout ran the command; Unreachable never got
// to (connection, authentication or host key error, or connection lost).
const (
	StatusOK          HostStatus = "ok"
	StatusFailed      HostStatus = "failed"
	StatusTimeout     HostStatus = "timeout"
	StatusUnreachable HostStatus = "unreachable"
	StatusCancelled   HostStatus = "cancelled"
)

// Exit statuses used with MaxExit for hosts without a remote exit code,
// following ssh(1) and timeout(1).
const (
	ExitUnreachable = 255
	ExitTimeout     = 124
	ExitCancelled   = 130
)

// HostResult is one host's outcome; it is also the -o json shape.
type HostResult struct {
	Host   string     `json:"host"`
	Port   int        `json:"port"`
	Status HostStatus `json:"status"`
	// ExitCode is the remote exit code, -1 when there is none.
	ExitCode        int           `json:"exit_code"`
	Signal          string        `json:"signal,omitempty"`
	Stdout          string        `json:"stdout"`
	Stderr          string        `json:"stderr"`
	DurationSeconds float64       `json:"duration_seconds"`
	Error           string        `json:"error"`
	Duration        time.Duration `json:"-"`
	label           string
}

// Result is the outcome of a run, hosts in target order.
type Result struct {
	Hosts []HostResult `json:"hosts"`
	// Status is the process exit status the run maps to: 0 when every host
	// ran the command and exited 0, else 1; with MaxExit the largest remote
	// exit code (ExitUnreachable/ExitTimeout/ExitCancelled for hosts
	// without one).
	Status   int           `json:"status"`
	Duration time.Duration `json:"-"`
	style    Style
}

// Run executes cmd, sent verbatim to each target's remote shell, on all
// opts.Targets with at most opts.Fanout sessions at once. Unless Silent, it
// writes each host's block to out (remote stderr to errOut) in target
// order as soon as that host's turn comes, then a summary of failed and
// unreachable hosts to errOut. The error is non-nil only for problems that
// stop the run as a whole (bad options, unreadable key files) or for ctx
// cancellation, in which case the partial Result is still returned.
func Run(ctx context.Context, opts Options, cmd string, out, errOut io.Writer) (Result, error) {
	start := time.Now()
	if out == nil {
		out = io.Discard
	}
	if errOut == nil {
		errOut = io.Discard
	}
	if strings.TrimSpace(cmd) == "" {
		return Result{}, errors.New("empty command: give the command to run, e.g. \"uptime\"")
	}
	targets := Dedup(opts.Targets)
	if len(targets) == 0 {
		return Result{}, errors.New("no targets: give --hosts or --hosts-file")
	}
	if opts.Fanout <= 0 {
		opts.Fanout = DefaultFanout
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	cfg := &SSHConfig{}
	if opts.SSHConfigFile != "" {
		var err error
		if cfg, err = ReadSSHConfigFile(opts.SSHConfigFile, opts.Home); err != nil {
			return Result{}, err
		}
	}
	hk, err := newHostKeys(&opts)
	if err != nil {
		return Result{}, err
	}
	keys, err := newKeyring(&opts, errOut)
	if err != nil {
		return Result{}, err
	}
	defer keys.close()
	if opts.InsecureIgnoreHostKey {
		fmt.Fprintln(errOut, "warning: --insecure-ignore-host-key: host keys are NOT verified; anyone on the path can impersonate these hosts")
	}

	r := &runner{opts: &opts, cmd: cmd, cfg: cfg, hk: hk, keys: keys, targets: targets}
	res := Result{Hosts: make([]HostResult, len(targets)), style: opts.Style}
	labels := makeLabels(targets)
	p := newPrinter(out, errOut, opts.Style, labels, !opts.Gather && !opts.Silent)

	work := make(chan int)
	var wg sync.WaitGroup
	workers := min(opts.Fanout, len(targets))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				o, e := p.writers(i)
				hr := r.runHost(ctx, i, o, e)
				hr.label = labels[i]
				hr.Stdout, hr.Stderr = p.captured(i)
				res.Hosts[i] = hr
				p.done(i, hr)
			}
		}()
	}
	next := 0
feed:
	for ; next < len(targets); next++ {
		select {
		case work <- next:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	for i := next; i < len(targets); i++ {
		hr := HostResult{Host: targets[i].Host, Port: r.port(targets[i]), Status: StatusCancelled, ExitCode: -1,
			Error: "cancelled before connecting", label: labels[i]}
		res.Hosts[i] = hr
		p.done(i, hr)
	}
	res.Duration = time.Since(start)
	res.Status = res.exitStatus(opts.MaxExit)
	if opts.Gather && !opts.Silent {
		res.WriteGathered(out, errOut)
	}
	if !opts.Silent {
		io.WriteString(errOut, res.Summary())
	}
	return res, ctx.Err()
}

type runner struct {
	opts    *Options
	cmd     string
	cfg     *SSHConfig
	hk      *hostKeys
	keys    *keyring
	targets []Target
}

func (r *runner) port(t Target) int {
	switch {
	case t.Port != 0:
		return t.Port
	case r.opts.Port != 0:
		return r.opts.Port
	}
	if p := r.cfg.Lookup(t.Host).Port; p != 0 {
		return p
	}
	return 22
}

func (r *runner) user(hc HostConfig) string {
	for _, u := range []string{r.opts.User, hc.User, r.opts.DefaultUser, os.Getenv("USER")} {
		if u != "" {
			return u
		}
	}
	return "root"
}

func (r *runner) runHost(ctx context.Context, i int, stdout, stderr io.Writer) (hr HostResult) {
	t := r.targets[i]
	hc := r.cfg.Lookup(t.Host)
	port := r.port(t)
	// As in ssh(1), known_hosts is consulted for the address connected to.
	dialHost := t.Host
	if hc.HostName != "" {
		dialHost = hc.HostName
	}
	addr := net.JoinHostPort(dialHost, strconv.Itoa(port))
	start := time.Now()
	hr = HostResult{Host: t.Host, Port: port, ExitCode: -1}
	defer func() {
		hr.Duration = time.Since(start)
		hr.DurationSeconds = hr.Duration.Seconds()
	}()
	fail := func(st HostStatus, err error) HostResult {
		hr.Status, hr.Error = st, err.Error()
		if ctx.Err() != nil {
			hr.Status, hr.Error = StatusCancelled, "cancelled"
		}
		return hr
	}

	trusted, err := ParseHostKeys(t.HostKeys)
	if err != nil {
		return fail(StatusUnreachable, err)
	}
	ct := r.opts.ConnectTimeout
	user := r.user(hc)
	offered := 0
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			s := r.keys.signers(hc.IdentityFiles)
			offered = len(s)
			return s, nil
		})},
		HostKeyCallback:   r.hk.callback(trusted, t.PinFile),
		HostKeyAlgorithms: r.hk.algorithms(addr, trusted, t.PinFile),
		Timeout:           ct,
	}
	d := net.Dialer{Timeout: ct}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(StatusUnreachable, connectError(err, ct))
	}
	conn = quickAck(conn)
	// Ctrl-C: once a session exists its command is told to stop (the exec
	// request may be in flight; requests keep their order), then closing
	// the connection unblocks the handshake or the session.
	var live atomic.Pointer[ssh.Session]
	stop := context.AfterFunc(ctx, func() {
		if s := live.Load(); s != nil {
			signal(s, ssh.SIGINT)
		}
		conn.Close()
	})
	defer stop()
	defer conn.Close()
	conn.SetDeadline(start.Add(ct))
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		if strings.Contains(err.Error(), "unable to authenticate") {
			err = authError(user, offered)
		}
		return fail(StatusUnreachable, connectError(err, ct))
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return fail(StatusUnreachable, connectError(err, ct))
	}
	live.Store(sess)
	sess.Stdout, sess.Stderr = stdout, stderr
	if err := sess.Start(r.cmd); err != nil {
		return fail(StatusUnreachable, connectError(err, ct))
	}
	conn.SetDeadline(time.Time{})

	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	var timeout <-chan time.Time
	if r.opts.CommandTimeout > 0 {
		tm := time.NewTimer(r.opts.CommandTimeout)
		defer tm.Stop()
		timeout = tm.C
	}
	select {
	case err = <-done:
	case <-timeout:
		signal(sess, ssh.SIGKILL)
		client.Close()
		<-done
		return fail(StatusTimeout, fmt.Errorf("command timed out after %s", r.opts.CommandTimeout))
	case <-ctx.Done(): // the AfterFunc signals and closes
		<-done
		return fail(StatusCancelled, ctx.Err())
	}
	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		hr.Status, hr.ExitCode = StatusOK, 0
	case errors.As(err, &exitErr):
		hr.Status, hr.ExitCode, hr.Signal = StatusFailed, exitErr.ExitStatus(), exitErr.Signal()
		if hr.Signal != "" {
			hr.Error = "killed by signal " + hr.Signal
		}
	case errors.As(err, &missing):
		hr.Status, hr.Error = StatusFailed, "remote command ended without an exit status"
	default:
		return fail(StatusUnreachable, fmt.Errorf("connection lost: %v", err))
	}
	return hr
}

// signalGrace bounds the wait for a signal request to be written.
const signalGrace = 200 * time.Millisecond

// signal asks the server to signal the remote command, waiting at most
// signalGrace for the request to be written. Closing the connection alone
// is not enough: sshd then closes the command's pipes but lets it run, so
// one that neither reads nor writes would go on. OpenSSH refuses signals
// for root logins, hence the limit the help documents.
func signal(sess *ssh.Session, sig ssh.Signal) {
	sent := make(chan struct{})
	go func() {
		sess.Signal(sig)
		close(sent)
	}()
	select {
	case <-sent:
	case <-time.After(signalGrace):
	}
}

// authError says what was tried and how to fix it; x/crypto's own
// message ("unable to authenticate, attempted methods [none publickey]")
// names neither the user nor the keys.
func authError(user string, offered int) error {
	if offered == 0 {
		return fmt.Errorf("authentication as %s failed: no key to offer (give -i FILE, or add a key to ssh-agent or ~/.ssh)", user)
	}
	what := "did not accept the one key offered"
	if offered > 1 {
		what = fmt.Sprintf("accepted none of the %d keys offered", offered)
	}
	return fmt.Errorf("authentication as %s refused: the server %s (give the right key with -i FILE, or another --user)", user, what)
}

// connectError turns deadline errors into a message naming the limit.
func connectError(err error, ct time.Duration) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("connection timed out after %s (--connect-timeout)", ct)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return errors.New("connection closed by the server before the SSH session started")
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "ssh: handshake failed: ")
	return errors.New(msg)
}

// exitStatus maps host outcomes to the process exit status.
func (r *Result) exitStatus(maxExit bool) int {
	worst := 0
	for _, h := range r.Hosts {
		code := h.ExitCode
		switch h.Status {
		case StatusOK:
			code = 0
		case StatusFailed:
			if code < 0 {
				code = 1
			}
		case StatusTimeout:
			code = ExitTimeout
		case StatusUnreachable:
			code = ExitUnreachable
		case StatusCancelled:
			code = ExitCancelled
		}
		if !maxExit && code != 0 {
			return 1
		}
		worst = max(worst, code)
	}
	return worst
}

// Summary lists failed and unreachable hosts, one line each kind; it is
// empty when every host succeeded.
func (r *Result) Summary() string {
	var failed, unreachable, cancelled []string
	for _, h := range r.Hosts {
		switch h.Status {
		case StatusFailed:
			why := fmt.Sprintf("exit %d", h.ExitCode)
			if h.Signal != "" {
				why = "signal " + h.Signal
			} else if h.ExitCode < 0 {
				why = h.Error
			}
			failed = append(failed, fmt.Sprintf("%s (%s)", h.label, why))
		case StatusTimeout:
			failed = append(failed, fmt.Sprintf("%s (%s)", h.label, h.Error))
		case StatusUnreachable:
			unreachable = append(unreachable, fmt.Sprintf("%s (%s)", h.label, h.Error))
		case StatusCancelled:
			cancelled = append(cancelled, h.label)
		}
	}
	var b strings.Builder
	name := r.style.name()
	n := len(r.Hosts)
	if len(failed) > 0 {
		fmt.Fprintf(&b, "%s: %d of %d hosts failed: %s\n", name, len(failed), n, strings.Join(failed, ", "))
	}
	if len(unreachable) > 0 {
		fmt.Fprintf(&b, "%s: %d of %d hosts unreachable: %s\n", name, len(unreachable), n, strings.Join(unreachable, ", "))
	}
	if len(cancelled) > 0 {
		fmt.Fprintf(&b, "%s: interrupted; %d of %d hosts did not finish: %s\n", name, len(cancelled), n, FoldHosts(cancelled))
	}
	return b.String()
}

func (s Style) name() string {
	if s == StyleAllSSH {
		return "allssh"
	}
	return "hostssh"
}

// makeLabels names hosts in banners: the host alone, or host:port when the
// same host appears with several ports.
func makeLabels(targets []Target) []string {
	count := map[string]int{}
	for _, t := range targets {
		count[t.Host]++
	}
	labels := make([]string, len(targets))
	for i, t := range targets {
		labels[i] = t.Host
		if count[t.Host] > 1 {
			labels[i] = t.String()
		}
	}
	return labels
}
