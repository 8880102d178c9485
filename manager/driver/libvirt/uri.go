package libvirt

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
)

// Transport is how a connection reaches libvirtd.
type Transport string

const (
	TransportUnix Transport = "unix"
	TransportTCP  Transport = "tcp"
	TransportTLS  Transport = "tls"
	TransportSSH  Transport = "ssh"
)

// Default ports and the system socket, as in libvirt itself.
const (
	DefaultTCPPort = "16509"
	DefaultTLSPort = "16514"
	DefaultSSHPort = "22"
	SystemSocket   = "/run/libvirt/libvirt-sock"
	SessionPath    = "/session"
	SystemPath     = "/system"
)

// URI is a parsed libvirt connection URI such as qemu+tcp://127.0.0.2/system.
type URI struct {
	Transport Transport
	User      string // ssh only
	Host      string // empty for unix
	Port      string // empty means the transport's default
	Path      string // /system or /session
	// Socket is the libvirtd socket: the local one for unix, the remote one for ssh.
	Socket string
	// PKIPath holds cacert.pem, clientcert.pem and clientkey.pem for tls.
	PKIPath string
	// NoVerify skips server certificate (tls) or host key (ssh) verification.
	NoVerify bool
	// KeyFile and KnownHosts configure ssh when no ssh.ClientConfig is supplied.
	KeyFile    string
	KnownHosts string

	raw string
}

var (
	transports  = []string{"unix", "tcp", "tls", "ssh"}
	paths       = []string{SystemPath, SessionPath}
	queryParams = map[Transport][]string{
		TransportUnix: {"socket"},
		TransportTCP:  {},
		TransportTLS:  {"pkipath", "no_verify"},
		TransportSSH:  {"socket", "keyfile", "known_hosts", "no_verify"},
	}
)

// ParseURI parses a libvirt URI. Only the qemu driver is accepted; a plain qemu://host/ means
// TLS and qemu:///system the local unix socket, as in libvirt. Errors name the nearest valid
// spelling.
func ParseURI(s string) (*URI, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("libvirt URI %q: %v", s, err)
	}
	if u.Scheme == "" || u.Opaque != "" {
		return nil, fmt.Errorf("libvirt URI %q: want driver[+transport]://[user@]host[:port]/system, e.g. qemu+tcp://127.0.0.2/system", s)
	}
	driver, transport, hasTransport := strings.Cut(strings.ToLower(u.Scheme), "+")
	if driver != "qemu" {
		return nil, fmt.Errorf("libvirt URI %q: unsupported driver %q, did you mean %q?", s, driver, "qemu")
	}
	r := &URI{raw: s, Host: u.Hostname(), Port: u.Port(), Path: u.Path}
	switch {
	case hasTransport:
		if !contains(transports, transport) {
			return nil, fmt.Errorf("libvirt URI %q: unknown transport %q, did you mean %q? (valid: %s)",
				s, transport, nearest(transport, transports), strings.Join(transports, ", "))
		}
		r.Transport = Transport(transport)
	case u.Host != "":
		r.Transport = TransportTLS
	default:
		r.Transport = TransportUnix
	}
	if !contains(paths, r.Path) {
		return nil, fmt.Errorf("libvirt URI %q: path %q, did you mean %q?", s, r.Path, nearest(r.Path, paths))
	}
	if u.User != nil {
		if r.Transport != TransportSSH {
			return nil, fmt.Errorf("libvirt URI %q: a user name is only used by qemu+ssh", s)
		}
		if _, hasPass := u.User.Password(); hasPass {
			return nil, fmt.Errorf("libvirt URI %q: passwords do not belong in a URI; use a key or an ssh.ClientConfig", s)
		}
		r.User = u.User.Username()
	}
	if r.Transport == TransportUnix {
		if u.Host != "" {
			return nil, fmt.Errorf("libvirt URI %q: unix transport takes no host, did you mean qemu+tcp://%s%s?", s, u.Host, r.Path)
		}
	} else if r.Host == "" {
		return nil, fmt.Errorf("libvirt URI %q: %s transport needs a host, e.g. qemu+%s://127.0.0.2/system", s, r.Transport, r.Transport)
	}

	q := u.Query()
	valid := queryParams[r.Transport]
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !contains(valid, k) {
			if len(valid) == 0 {
				return nil, fmt.Errorf("libvirt URI %q: %s transport takes no parameter %q", s, r.Transport, k)
			}
			return nil, fmt.Errorf("libvirt URI %q: unknown parameter %q for %s, did you mean %q? (valid: %s)",
				s, k, r.Transport, nearest(k, valid), strings.Join(valid, ", "))
		}
	}
	r.Socket = q.Get("socket")
	r.PKIPath = q.Get("pkipath")
	r.KeyFile = q.Get("keyfile")
	r.KnownHosts = q.Get("known_hosts")
	if v := q.Get("no_verify"); v != "" {
		switch v {
		case "1":
			r.NoVerify = true
		case "0":
		default:
			return nil, fmt.Errorf("libvirt URI %q: no_verify=%q, want 0 or 1", s, v)
		}
	}
	if (r.Transport == TransportUnix || r.Transport == TransportSSH) && r.Socket == "" {
		r.Socket = SystemSocket
	}
	return r, nil
}

// String returns the URI as given to ParseURI.
func (u *URI) String() string { return u.raw }

// Address is host:port for the network transports, with the transport's default port.
func (u *URI) Address() string {
	port := u.Port
	if port == "" {
		switch u.Transport {
		case TransportTCP:
			port = DefaultTCPPort
		case TransportTLS:
			port = DefaultTLSPort
		case TransportSSH:
			port = DefaultSSHPort
		}
	}
	return net.JoinHostPort(u.Host, port)
}

// remoteName is what the connection asks the daemon to open once the transport is up: all
// connections are local from libvirtd's point of view.
func (u *URI) remoteName() string { return "qemu://" + u.Path }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// nearest returns the candidate with the smallest edit distance to s.
func nearest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		if d := editDistance(s, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// PeerURI is how another host's libvirtd reaches this one for a peer-to-peer migration: the
// same transport without the client-side settings (keys, certificates and known_hosts are the
// source daemon's own). A unix socket is reachable only locally, so the peer uses TCP to
// hostIP, the host's hypervisor address.
func (u *URI) PeerURI(hostIP string) string {
	path := u.Path
	switch u.Transport {
	case TransportUnix:
		return "qemu+tcp://" + joinHostPort(hostIP, "") + path
	case TransportSSH:
		user := ""
		if u.User != "" {
			user = u.User + "@"
		}
		return "qemu+ssh://" + user + joinHostPort(u.Host, u.Port) + path
	}
	return "qemu+" + string(u.Transport) + "://" + joinHostPort(u.Host, u.Port) + path
}

// joinHostPort brackets IPv6 literals and leaves the port out when it is the default.
func joinHostPort(host, port string) string {
	if port == "" {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}
