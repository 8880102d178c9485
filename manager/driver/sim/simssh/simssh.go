// Package simssh serves SSH for the simulated cluster: each simulated
// hypervisor and CVM answers on its own loopback address, so hostssh/allssh
// work against the simulator as against real machines. Sessions run a
// simulated shell (shell.go, commands in commands.go): no process of the
// manager's machine is started, so holding the client key gives no shell
// on the manager's machine.
//
// Keys live in DIR/ssh/: one ed25519 host key per address (created once,
// then reused, so known_hosts entries stay valid across restarts) and the
// only client key the servers accept (id_ed25519). The client key's
// private half stays on disk for local tools; it is never served.
package simssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	glssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
)

// Kind tells a hypervisor from a controller VM.
type Kind string

// Kinds of simulated machines.
const (
	KindHost Kind = "host"
	KindCVM  Kind = "cvm"
)

// Target is one simulated machine to serve.
type Target struct {
	IP   string // loopback address, e.g. 127.0.1.5
	Port int    // 0 picks a free port (see Server.Port)
	Name string // what `hostname` prints
	Kind Kind
	// HostIP is the hypervisor IP whose VMs `virsh list` shows; empty
	// means IP. Only used for KindHost.
	HostIP string
}

// VMInfo is one line of `virsh list`.
type VMInfo struct {
	ID    int    // libvirt domain ID; 0 when not running (shown as "-")
	Name  string // domain name
	State string // virsh wording: running, paused, shut off, ...
}

// Lookup returns the VMs the cluster model places on the hypervisor with
// the given IP; it is called once per SSH session on a host.
type Lookup func(hostIP string) []VMInfo

// HostKey is a server's public host key as clients want it.
type HostKey struct {
	AuthorizedKey string // "ssh-ed25519 AAAA..." (no newline)
	Fingerprint   string // "SHA256:..."
}

// Until a connection authenticates it is bounded in time and in number
// per address, so clients that connect and say nothing cannot hold the
// server (OpenSSH's LoginGraceTime and MaxStartups).
const (
	DefaultHandshakeTimeout   = 10 * time.Second
	DefaultMaxUnauthenticated = 16
)

// Server serves every registered Target until Close.
type Server struct {
	// HandshakeTimeout and MaxUnauthenticated bound the connections that
	// have not authenticated yet (defaults above); set them before Serve.
	HandshakeTimeout   time.Duration
	MaxUnauthenticated int

	dir       string
	lookup    Lookup
	clientPub ssh.PublicKey
	started   time.Time
	// active counts running sessions (tests wait for it to drop).
	active atomic.Int32

	mu      sync.Mutex
	alive   func(Target) bool
	dp      DataPath
	keys    map[string]ssh.Signer
	servers map[string]*glssh.Server // by IP
	ports   map[string]int
	closed  bool
}

// New loads or creates the keys under dataDir/ssh and the command shims.
func New(dataDir string, lookup Lookup) (*Server, error) {
	// Absolute, because sessions run in their own working directory and
	// find the shims through PATH.
	dir, err := filepath.Abs(filepath.Join(dataDir, "ssh"))
	if err != nil {
		return nil, fmt.Errorf("simssh: %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "host_keys")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("simssh: %w", err)
		}
	}
	// Earlier versions ran a real shell with command shims here.
	_ = os.RemoveAll(filepath.Join(dir, "bin"))
	_ = os.RemoveAll(filepath.Join(dir, "home"))
	s := &Server{dir: dir, lookup: lookup, started: time.Now(),
		keys: map[string]ssh.Signer{}, servers: map[string]*glssh.Server{}, ports: map[string]int{}}
	client, err := loadOrCreateKey(filepath.Join(dir, "id_ed25519"), "acli-sim-client")
	if err != nil {
		return nil, err
	}
	s.clientPub = client.PublicKey()
	return s, nil
}

// ClientKeyPath is the private key the servers accept (for acli -i).
func (s *Server) ClientKeyPath() string { return filepath.Join(s.dir, "id_ed25519") }

// HostKey returns the host key of the machine at ip, creating it on first
// use so that it can be published before the machine is served.
func (s *Server) HostKey(ip string) (HostKey, error) {
	signer, err := s.hostSigner(ip)
	if err != nil {
		return HostKey{}, err
	}
	pub := signer.PublicKey()
	return HostKey{
		AuthorizedKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
		Fingerprint:   ssh.FingerprintSHA256(pub),
	}, nil
}

// SetAlive installs the check made on every new connection: a machine
// that is not alive (a failed simulated host, a stopped CVM) drops the
// connection before the SSH handshake, as a dead machine would not
// answer. nil means always alive.
func (s *Server) SetAlive(alive func(Target) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alive = alive
}

func (s *Server) isAlive(t Target) bool {
	s.mu.Lock()
	alive := s.alive
	s.mu.Unlock()
	return alive == nil || alive(t)
}

// Port returns the port the machine at ip is served on, 0 if none.
func (s *Server) Port(ip string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ports[ip]
}

// Serve starts answering on every target's IP:Port. It may be called again
// for machines added later; on error no listener of this call is left open.
func (s *Server) Serve(targets []Target) error {
	type started struct {
		ip  string
		srv *glssh.Server
		ln  net.Listener
	}
	var ok []started
	undo := func() {
		for _, st := range ok {
			st.ln.Close()
		}
	}
	for _, t := range targets {
		ip := net.ParseIP(t.IP)
		if ip == nil || !ip.IsLoopback() {
			undo()
			return fmt.Errorf("simssh: %q is not a loopback address; the simulated cluster serves SSH on 127.0.0.0/8 only", t.IP)
		}
		if t.Kind != KindHost && t.Kind != KindCVM {
			undo()
			return fmt.Errorf("simssh: %s: unknown kind %q: want %q or %q", t.IP, t.Kind, KindHost, KindCVM)
		}
		s.mu.Lock()
		_, dup := s.servers[t.IP]
		closed := s.closed
		s.mu.Unlock()
		if closed {
			undo()
			return errors.New("simssh: server closed")
		}
		if dup {
			undo()
			return fmt.Errorf("simssh: %s is already served", t.IP)
		}
		signer, err := s.hostSigner(t.IP)
		if err != nil {
			undo()
			return err
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(t.IP, strconv.Itoa(t.Port)))
		if err != nil {
			undo()
			return fmt.Errorf("simssh: %w", err)
		}
		gate := s.newGate()
		srv := &glssh.Server{
			Handler: s.handler(t),
			ConnCallback: func(ctx glssh.Context, conn net.Conn) net.Conn {
				if !s.isAlive(t) {
					return nil // gliderlabs closes it
				}
				gc := gate.admit(conn)
				if gc == nil {
					return nil
				}
				ctx.SetValue(pendingKey{}, gc)
				return gc
			},
			PublicKeyHandler: func(ctx glssh.Context, key glssh.PublicKey) bool {
				if !glssh.KeysEqual(key, s.clientPub) {
					return false
				}
				if gc, ok := ctx.Value(pendingKey{}).(*pendingConn); ok {
					gc.settle(false)
				}
				return true
			},
		}
		srv.AddHostKey(signer)
		ok = append(ok, started{t.IP, srv, ln})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range ok {
		s.servers[st.ip] = st.srv
		s.ports[st.ip] = st.ln.Addr().(*net.TCPAddr).Port
		go st.srv.Serve(st.ln)
	}
	return nil
}

// Close stops every server and drops open sessions.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var first error
	for ip, srv := range s.servers {
		if err := srv.Close(); err != nil && first == nil {
			first = err
		}
		delete(s.servers, ip)
		delete(s.ports, ip)
	}
	return first
}

func (s *Server) hostSigner(ip string) (ssh.Signer, error) {
	if net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("simssh: bad IP %q", ip)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[ip]; ok {
		return k, nil
	}
	file := filepath.Join(s.dir, "host_keys", "ssh_host_"+strings.ReplaceAll(ip, ":", "_")+"_ed25519_key")
	k, err := loadOrCreateKey(file, "acli-sim-host-"+ip)
	if err != nil {
		return nil, err
	}
	s.keys[ip] = k
	return k, nil
}

// loadOrCreateKey reads an OpenSSH private key, or creates an ed25519 one
// (with FILE.pub beside it) when the file does not exist yet.
func loadOrCreateKey(file, comment string) (ssh.Signer, error) {
	data, err := os.ReadFile(file)
	if err == nil {
		k, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("simssh: %s: %v", file, err)
		}
		return k, nil
	}
	if !os.IsNotExist(err) {
		return nil, fmt.Errorf("simssh: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	// Write then rename so a crash never leaves a half-written key.
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("simssh: %w", err)
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + comment + "\n"
	if err := os.WriteFile(file+".pub", []byte(pub), 0o644); err != nil {
		return nil, fmt.Errorf("simssh: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return nil, fmt.Errorf("simssh: %w", err)
	}
	return signer, nil
}

// gate counts one address's connections that have not authenticated.
type gate struct {
	n       atomic.Int32
	max     int32
	timeout time.Duration
}

func (s *Server) newGate() *gate {
	g := &gate{max: int32(s.MaxUnauthenticated), timeout: s.HandshakeTimeout}
	if g.max <= 0 {
		g.max = DefaultMaxUnauthenticated
	}
	if g.timeout <= 0 {
		g.timeout = DefaultHandshakeTimeout
	}
	return g
}

// admit returns conn guarded until it authenticates, or nil when the
// address already has its most unauthenticated connections.
func (g *gate) admit(conn net.Conn) *pendingConn {
	if g.n.Add(1) > g.max {
		g.n.Add(-1)
		return nil
	}
	c := &pendingConn{Conn: conn, g: g}
	c.mu.Lock()
	c.timer = time.AfterFunc(g.timeout, func() { c.settle(true) })
	c.mu.Unlock()
	return c
}

type pendingKey struct{}

// pendingConn holds a place at its gate until it authenticates or closes;
// it is closed if the handshake deadline comes first.
type pendingConn struct {
	net.Conn
	g *gate

	mu      sync.Mutex
	timer   *time.Timer
	settled bool
}

func (c *pendingConn) settle(expired bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled {
		return
	}
	c.settled = true
	c.timer.Stop()
	c.g.n.Add(-1)
	if expired {
		c.Conn.Close()
	}
}

func (c *pendingConn) Close() error {
	c.settle(false)
	return c.Conn.Close()
}
