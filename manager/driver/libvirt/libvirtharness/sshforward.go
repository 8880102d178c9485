package libvirtharness

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHHost is an SSH server of a test that lets root in with a key of the
// test's own: the key file and a known_hosts vouching for the server.
type SSHHost struct {
	Addr, KeyFile, KnownHosts string
}

// ServeSSH serves srv (its key handler and host key set here) on a free
// port of ip until t ends.
func ServeSSH(t testing.TB, ip string, srv *gliderssh.Server) SSHHost {
	t.Helper()
	dir := t.TempDir()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, _ := ssh.NewSignerFromKey(hostPriv)
	cliPub, cliPriv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(cliPriv, "acli test")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	authorized, _ := ssh.NewPublicKey(cliPub)
	srv.PublicKeyHandler = func(ctx gliderssh.Context, key gliderssh.PublicKey) bool {
		return ctx.User() == "root" && gliderssh.KeysEqual(key, authorized)
	}
	srv.AddHostKey(hostSigner)
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	knownHosts := filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(l.Addr().String())}, hostSigner.PublicKey())
	if err := os.WriteFile(knownHosts, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return SSHHost{Addr: l.Addr().String(), KeyFile: keyFile, KnownHosts: knownHosts}
}

// URI is the qemu+ssh URI of the libvirtd socket through h.
func (h SSHHost) URI(socket string) string {
	return fmt.Sprintf("qemu+ssh://root@%s/system?socket=%s&keyfile=%s&known_hosts=%s", h.Addr, socket, h.KeyFile, h.KnownHosts)
}

// ForwardSocket serves OpenSSH's direct-streamlocal channel (what qemu+ssh
// opens to reach libvirtd's socket) by dialing the unix socket asked for;
// an SSH server in a test hands it to ChannelHandlers.
func ForwardSocket(_ *gliderssh.Server, _ *ssh.ServerConn, nc ssh.NewChannel, _ gliderssh.Context) {
	var req struct {
		Socket    string
		Reserved0 string
		Reserved1 uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &req); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad request")
		return
	}
	up, err := net.Dial("unix", req.Socket)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		up.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	go func() { io.Copy(ch, up); ch.CloseWrite(); ch.Close() }()
	io.Copy(up, ch)
	up.Close()
}
