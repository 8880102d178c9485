package libvirtharness

import (
	"io"
	"net"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
)

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
