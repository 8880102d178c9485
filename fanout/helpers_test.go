package fanout

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	glssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testHost is an in-process SSH server on its own loopback address.
type testHost struct {
	ip   string
	port int
	key  ssh.Signer
}

func (h *testHost) target() Target { return Target{Host: h.ip, Port: h.port} }

// testCluster is n servers on 127.50.4.11.. that accept one client key,
// plus a known_hosts file listing them.
type testCluster struct {
	t          *testing.T
	dir        string
	clientKey  string // private key file
	clientPub  ssh.PublicKey
	knownHosts string
	hosts      []*testHost
}

func newSigner(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, pem.EncodeToMemory(block)
}

func newTestCluster(t testing.TB, n int, handler func(i int) glssh.Handler) *testCluster {
	tt, _ := t.(*testing.T)
	c := &testCluster{t: tt, dir: t.TempDir()}
	signer, pemBytes := newSigner(t)
	c.clientPub = signer.PublicKey()
	c.clientKey = filepath.Join(c.dir, "id_ed25519")
	if err := os.WriteFile(c.clientKey, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	var kh bytes.Buffer
	for i := 0; i < n; i++ {
		ip := fmt.Sprintf("127.50.4.%d", 11+i)
		h := startTestServer(t, ip, handler(i), c.clientPub)
		c.hosts = append(c.hosts, h)
		fmt.Fprintln(&kh, knownhosts.Line([]string{net.JoinHostPort(ip, fmt.Sprint(h.port))}, h.key.PublicKey()))
	}
	c.knownHosts = filepath.Join(c.dir, "known_hosts")
	if err := os.WriteFile(c.knownHosts, kh.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func startTestServer(t testing.TB, ip string, handler glssh.Handler, clientPub ssh.PublicKey) *testHost {
	t.Helper()
	hostKey, _ := newSigner(t)
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	srv := &glssh.Server{
		Handler: handler,
		PublicKeyHandler: func(ctx glssh.Context, key glssh.PublicKey) bool {
			return clientPub != nil && glssh.KeysEqual(key, clientPub)
		},
	}
	srv.AddHostKey(hostKey)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &testHost{ip: ip, port: ln.Addr().(*net.TCPAddr).Port, key: hostKey}
}

// options returns Options that use only the cluster's key and known_hosts.
func (c *testCluster) options() Options {
	o := Options{IdentityFiles: []string{c.clientKey}, KnownHostsFiles: []string{c.knownHosts}, DefaultUser: "root"}
	for _, h := range c.hosts {
		o.Targets = append(o.Targets, h.target())
	}
	return o
}

// reply is a handler printing fixed stdout/stderr and exiting with code.
func reply(stdout, stderr string, code int) glssh.Handler {
	return func(s glssh.Session) {
		io.WriteString(s, stdout)
		io.WriteString(s.Stderr(), stderr)
		s.Exit(code)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond; the generous limit only guards against a hung test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func banners(style Style, hosts ...string) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = style.Banner(h)
	}
	return out
}

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }
