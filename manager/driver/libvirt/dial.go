package libvirt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DialOptions tunes how a connection is made. The zero value uses libvirt's defaults.
type DialOptions struct {
	// Timeout bounds establishing the transport (TCP connect, TLS or SSH handshake). Default 5s.
	Timeout time.Duration
	// TLSConfig replaces the certificates found through the URI's pkipath.
	TLSConfig *tls.Config
	// SSHConfig replaces the key file and known_hosts named by the URI, so the caller can share
	// the credentials and host-key policy of its own SSH fan-out.
	SSHConfig *ssh.ClientConfig
	// CallTimeout bounds each call on the connection: libvirtd gives none of its own, and a
	// daemon waiting on a stalled guest would hold the caller for ever. Default 2m; a live
	// migration is bounded by its own deadline instead.
	CallTimeout time.Duration
}

func (o DialOptions) callTimeout() time.Duration {
	if o.CallTimeout > 0 {
		return o.CallTimeout
	}
	return 2 * time.Minute
}

func (o DialOptions) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 5 * time.Second
}

// dialer makes the transport for go-libvirt and remembers the last connection, so a health
// probe can cut a connection that stopped answering (go-libvirt requests have no timeout).
type dialer struct {
	dial func() (net.Conn, error)

	mu   sync.Mutex
	last net.Conn
}

func (d *dialer) Dial() (net.Conn, error) {
	c, err := d.dial()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.last = c
	d.mu.Unlock()
	return c, nil
}

// cut closes the current transport; go-libvirt then sees the connection as lost.
func (d *dialer) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last != nil {
		d.last.Close()
	}
}

func newDialer(u *URI, o DialOptions) (*dialer, error) {
	to := o.timeout()
	nd := &net.Dialer{Timeout: to, KeepAlive: 15 * time.Second}
	switch u.Transport {
	case TransportUnix:
		return &dialer{dial: func() (net.Conn, error) { return nd.Dial("unix", u.Socket) }}, nil
	case TransportTCP:
		return &dialer{dial: func() (net.Conn, error) { return nd.Dial("tcp", u.Address()) }}, nil
	case TransportTLS:
		cfg := o.TLSConfig
		if cfg == nil {
			var err error
			if cfg, err = tlsConfigFromPKI(u); err != nil {
				return nil, err
			}
		}
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = u.Host
		}
		return &dialer{dial: func() (net.Conn, error) {
			c, err := tls.DialWithDialer(nd, "tcp", u.Address(), cfg)
			if err != nil {
				return nil, fmt.Errorf("tls %s: %w", u.Address(), err)
			}
			return c, nil
		}}, nil
	case TransportSSH:
		cfg := o.SSHConfig
		if cfg == nil {
			var err error
			if cfg, err = sshConfigFromURI(u); err != nil {
				return nil, err
			}
		}
		if cfg.Timeout == 0 {
			c := *cfg
			c.Timeout = to
			cfg = &c
		}
		return &dialer{dial: func() (net.Conn, error) { return dialSSH(u, cfg) }}, nil
	}
	return nil, fmt.Errorf("libvirt URI %q: unknown transport %q", u, u.Transport)
}

// tlsConfigFromPKI loads client certificates the way libvirt lays them out: pkipath holds
// cacert.pem, clientcert.pem and clientkey.pem; without it the system-wide /etc/pki paths.
func tlsConfigFromPKI(u *URI) (*tls.Config, error) {
	ca, cert, key := "/etc/pki/CA/cacert.pem", "/etc/pki/libvirt/clientcert.pem", "/etc/pki/libvirt/private/clientkey.pem"
	if u.PKIPath != "" {
		ca = filepath.Join(u.PKIPath, "cacert.pem")
		cert = filepath.Join(u.PKIPath, "clientcert.pem")
		key = filepath.Join(u.PKIPath, "clientkey.pem")
	}
	cfg := &tls.Config{ServerName: u.Host, InsecureSkipVerify: u.NoVerify, MinVersion: tls.VersionTLS12}
	if !u.NoVerify {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("libvirt TLS: CA certificate: %w (set pkipath= or no_verify=1)", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("libvirt TLS: no certificate in %s", ca)
		}
		cfg.RootCAs = pool
	}
	// The client certificate is optional: servers with tls_no_verify_certificate accept without.
	if pair, err := tls.LoadX509KeyPair(cert, key); err == nil {
		cfg.Certificates = []tls.Certificate{pair}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("libvirt TLS: client certificate: %w", err)
	}
	return cfg, nil
}

// sshConfigFromURI builds the qemu+ssh defaults: the URI's user (else the current one), its
// keyfile (else ~/.ssh/id_ed25519, id_ecdsa, id_rsa) and known_hosts (else ~/.ssh/known_hosts).
func sshConfigFromURI(u *URI) (*ssh.ClientConfig, error) {
	name := u.User
	home, _ := os.UserHomeDir()
	if name == "" {
		cur, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("qemu+ssh: no user in URI and no current user: %w", err)
		}
		name = cur.Username
	}
	keys := []string{u.KeyFile}
	if u.KeyFile == "" {
		keys = []string{filepath.Join(home, ".ssh", "id_ed25519"), filepath.Join(home, ".ssh", "id_ecdsa"), filepath.Join(home, ".ssh", "id_rsa")}
	}
	var signers []ssh.Signer
	for _, k := range keys {
		b, err := os.ReadFile(k)
		if err != nil {
			if u.KeyFile != "" {
				return nil, fmt.Errorf("qemu+ssh: keyfile: %w", err)
			}
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("qemu+ssh: key %s: %w", k, err)
		}
		signers = append(signers, s)
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("qemu+ssh: no private key found (set keyfile= or pass an ssh.ClientConfig)")
	}
	hostKey := ssh.InsecureIgnoreHostKey()
	if !u.NoVerify {
		kh := u.KnownHosts
		if kh == "" {
			kh = filepath.Join(home, ".ssh", "known_hosts")
		}
		cb, err := knownhosts.New(kh)
		if err != nil {
			return nil, fmt.Errorf("qemu+ssh: known_hosts: %w (set known_hosts= or no_verify=1)", err)
		}
		hostKey = cb
	}
	return &ssh.ClientConfig{
		User:            name,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback: hostKey,
	}, nil
}

// dialSSH opens an SSH connection and a direct-streamlocal channel to the remote libvirt
// socket: the qemu+ssh idea without running a remote netcat.
func dialSSH(u *URI, cfg *ssh.ClientConfig) (net.Conn, error) {
	tcp, err := net.DialTimeout("tcp", u.Address(), cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", u.Address(), err)
	}
	// ssh.Dial bounds only the TCP connect: a frozen sshd accepts (the kernel does) and then
	// never answers, so the handshake and the channel open share one deadline.
	if cfg.Timeout > 0 {
		tcp.SetDeadline(time.Now().Add(cfg.Timeout))
	}
	sc, chans, reqs, err := ssh.NewClientConn(tcp, u.Address(), cfg)
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("ssh %s: %w", u.Address(), err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	c, err := client.Dial("unix", u.Socket)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("ssh %s: open remote socket %s: %w", u.Address(), u.Socket, err)
	}
	tcp.SetDeadline(time.Time{})
	return &sshConn{Conn: c, client: client}, nil
}

// sshConn closes its SSH client with the channel: one client per libvirt connection.
type sshConn struct {
	net.Conn
	client *ssh.Client
}

func (c *sshConn) Close() error {
	err := c.Conn.Close()
	if cerr := c.client.Close(); err == nil {
		err = cerr
	}
	return err
}
