package libvirt

import (
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	cases := []struct {
		in        string
		transport Transport
		addr      string
		socket    string
		user      string
	}{
		{"qemu+tcp://127.0.0.2/system", TransportTCP, "127.0.0.2:16509", "", ""},
		{"qemu+tcp://127.0.0.2:1234/system", TransportTCP, "127.0.0.2:1234", "", ""},
		{"qemu:///system", TransportUnix, ":", SystemSocket, ""},
		{"qemu+unix:///system?socket=/tmp/h1/libvirt-sock", TransportUnix, ":", "/tmp/h1/libvirt-sock", ""},
		{"qemu+ssh://root@host1/system", TransportSSH, "host1:22", SystemSocket, "root"},
		{"qemu+ssh://root@host1:2222/system?socket=/var/run/libvirt/libvirt-sock&no_verify=1", TransportSSH, "host1:2222", "/var/run/libvirt/libvirt-sock", "root"},
		{"qemu+tls://host1/system?pkipath=/etc/acli/pki", TransportTLS, "host1:16514", "", ""},
		{"qemu://host1/system", TransportTLS, "host1:16514", "", ""},
		{"QEMU+TCP://[::1]/session", TransportTCP, "[::1]:16509", "", ""},
	}
	for _, c := range cases {
		u, err := ParseURI(c.in)
		if err != nil {
			t.Errorf("ParseURI(%q): %v", c.in, err)
			continue
		}
		if u.Transport != c.transport || u.Socket != c.socket || u.User != c.user {
			t.Errorf("ParseURI(%q) = %+v", c.in, u)
		}
		if u.Transport != TransportUnix && u.Address() != c.addr {
			t.Errorf("ParseURI(%q).Address() = %q, want %q", c.in, u.Address(), c.addr)
		}
		if u.String() != c.in {
			t.Errorf("String() = %q", u.String())
		}
	}
	if u, _ := ParseURI("qemu+tls://h/system?pkipath=/p&no_verify=1"); u.PKIPath != "/p" || !u.NoVerify {
		t.Errorf("tls options not parsed: %+v", u)
	}
	if u, _ := ParseURI("qemu+tcp://h/session"); u.remoteName() != "qemu:///session" {
		t.Errorf("remote name %q", u.remoteName())
	}
}

// Bad URIs fail with one line naming the problem and the nearest valid spelling.
func TestParseURIErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"qemu+tpc://127.0.0.2/system", `unknown transport "tpc", did you mean "tcp"?`},
		{"qemu+sh://h/system", `did you mean "ssh"?`},
		{"xen+tcp://h/system", `unsupported driver "xen", did you mean "qemu"?`},
		{"qemu+tcp://h/sytem", `path "/sytem", did you mean "/system"?`},
		{"qemu+tcp://h/", `path "/", did you mean`},
		{"qemu+tcp:///system", "tcp transport needs a host"},
		{"qemu+unix://h/system", "unix transport takes no host, did you mean qemu+tcp://h/system?"},
		{"qemu+unix:///system?sockt=/x", `unknown parameter "sockt" for unix, did you mean "socket"?`},
		{"qemu+ssh://h/system?keyfil=/k", `did you mean "keyfile"?`},
		{"qemu+tcp://h/system?socket=/x", `tcp transport takes no parameter "socket"`},
		{"qemu+tcp://root@h/system", "only used by qemu+ssh"},
		{"qemu+ssh://root:pw@h/system", "passwords do not belong in a URI"},
		{"qemu+tls://h/system?no_verify=yes", "want 0 or 1"},
		{"127.0.0.2", "want driver[+transport]://"},
		{"qemu:system", "want driver[+transport]://"},
	}
	for _, c := range cases {
		_, err := ParseURI(c.in)
		if err == nil {
			t.Errorf("ParseURI(%q) succeeded, want error containing %q", c.in, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseURI(%q) error %q, want one line containing %q", c.in, err, c.want)
		}
	}
}

func TestDialerNeedsCredentials(t *testing.T) {
	u, _ := ParseURI("qemu+tls://h/system?pkipath=/nonexistent")
	if _, err := newDialer(u, DialOptions{}); err == nil || !strings.Contains(err.Error(), "CA certificate") {
		t.Errorf("tls without CA: %v", err)
	}
	u, _ = ParseURI("qemu+ssh://root@h/system?keyfile=/nonexistent")
	if _, err := newDialer(u, DialOptions{}); err == nil || !strings.Contains(err.Error(), "keyfile") {
		t.Errorf("ssh without key: %v", err)
	}
}

func TestPeerURI(t *testing.T) {
	for _, c := range []struct{ in, ip, want string }{
		{"qemu+tcp://127.0.0.2/system", "", "qemu+tcp://127.0.0.2/system"},
		{"qemu+tcp://127.0.0.2:16600/system", "", "qemu+tcp://127.0.0.2:16600/system"},
		{"qemu+unix:///system?socket=/run/h1/libvirt-sock", "127.0.0.2", "qemu+tcp://127.0.0.2/system"},
		{"qemu+unix:///system", "::1", "qemu+tcp://[::1]/system"},
		{"qemu+ssh://root@10.0.0.5:2222/system?keyfile=/k&no_verify=1", "", "qemu+ssh://root@10.0.0.5:2222/system"},
		{"qemu://10.0.0.5/system?pkipath=/pki", "", "qemu+tls://10.0.0.5/system"},
	} {
		u, err := ParseURI(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if got := u.PeerURI(c.ip); got != c.want {
			t.Errorf("PeerURI(%s, %q) = %s, want %s", c.in, c.ip, got, c.want)
		}
	}
}
