package libvirt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
)

// pipe copies both ways until either side closes.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(a, b); a.Close() }()
	go func() { defer wg.Done(); io.Copy(b, a); b.Close() }()
	wg.Wait()
}

// serve accepts on l until it is closed, handing each connection to h.
func serve(t *testing.T, l net.Listener, h func(net.Conn)) {
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); h(c) }()
		}
	}()
}

type pki struct {
	dir        string
	serverCert tls.Certificate
	pool       *x509.CertPool
}

// newPKI writes a CA and a client certificate the way libvirt lays out a pkipath, and makes
// a server certificate for 127.0.0.1 signed by the same CA.
func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acli test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cacert.pem", "CERTIFICATE", caDER)
	cliDER, cliKey := issue(2, "acli client", x509.ExtKeyUsageClientAuth)
	write("clientcert.pem", "CERTIFICATE", cliDER)
	kb, _ := x509.MarshalECPrivateKey(cliKey)
	write("clientkey.pem", "EC PRIVATE KEY", kb)
	srvDER, srvKey := issue(3, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pki{dir: dir, serverCert: tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}, pool: pool}
}

// The TLS transport, end to end: a TLS endpoint that demands a client certificate from the
// pkipath CA, in front of a real libvirtd socket.
func TestTLSTransport(t *testing.T) {
	h := hosts(t).Hosts[0]
	p := newPKI(t)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{p.serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, func(c net.Conn) {
		up, err := net.Dial("unix", h.Socket)
		if err != nil {
			c.Close()
			return
		}
		pipe(c, up)
	})
	uri := fmt.Sprintf("qemu+tls://%s/system?pkipath=%s", l.Addr(), p.dir)
	hi, err := dial(t, uri).HostInfo()
	if err != nil {
		t.Fatal(err)
	}
	if hi.UUID != h.UUID {
		t.Fatalf("reached host %s, want %s", hi.UUID, h.UUID)
	}

	// A server whose certificate the CA did not sign is refused.
	other := newPKI(t)
	if err := os.WriteFile(filepath.Join(p.dir, "cacert.pem"), mustRead(t, filepath.Join(other.dir, "cacert.pem")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(t.Context(), uri, DialOptions{Timeout: 2 * time.Second}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server accepted: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The SSH transport, end to end: key file and known_hosts from the URI, a direct-streamlocal
// channel to the host's real libvirt socket.
func TestSSHTransport(t *testing.T) {
	h := hosts(t).Hosts[1]
	srv := &gliderssh.Server{ChannelHandlers: map[string]gliderssh.ChannelHandler{"direct-streamlocal@openssh.com": libvirtharness.ForwardSocket}}
	sh := libvirtharness.ServeSSH(t, "127.0.0.1", srv)
	addr, knownHosts, uri := sh.Addr, sh.KnownHosts, sh.URI(h.Socket)
	hi, err := dial(t, uri).HostInfo()
	if err != nil {
		t.Fatal(err)
	}
	if hi.UUID != h.UUID {
		t.Fatalf("reached host %s, want %s", hi.UUID, h.UUID)
	}

	// A host key that known_hosts does not vouch for is refused.
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(otherPriv)
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, otherSigner.PublicKey())
	if err := os.WriteFile(knownHosts, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(t.Context(), uri, DialOptions{Timeout: 2 * time.Second}); err == nil || !strings.Contains(err.Error(), "key mismatch") {
		t.Fatalf("unknown host key accepted: %v", err)
	}
}
