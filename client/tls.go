package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// tlsConfig builds the client side of TLS 1.3 from the options' files.
// Unreadable files are bad input (exit 2), named with the flag to fix.
func (o Options) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if host, _, err := net.SplitHostPort(o.Addr); err == nil {
		cfg.ServerName = host
	}
	if o.CACert != "" {
		data, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, Errorf(ExitUsage, "--cacert: %v", fileErr(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, Errorf(ExitUsage, "--cacert: %s holds no PEM certificate", o.CACert)
		}
		cfg.RootCAs = pool
	}
	switch {
	case o.Cert != "" && o.Key == "":
		return nil, Errorf(ExitUsage, "--cert %s needs its --key", o.Cert)
	case o.Key != "" && o.Cert == "":
		return nil, Errorf(ExitUsage, "--key %s needs its --cert", o.Key)
	case o.Cert != "":
		kp, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, Errorf(ExitUsage, "--cert/--key: %v", fileErr(err))
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
}

func fileErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}

// handshakes remembers the last failed TLS handshake: gRPC's connectivity
// states carry no reason, and "unknown authority" is what users need.
type handshakes struct {
	credentials.TransportCredentials
	mu  sync.Mutex
	err error
}

func (h *handshakes) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, ai, err := h.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil {
		h.mu.Lock()
		h.err = err
		h.mu.Unlock()
	}
	return c, ai, err
}

func (h *handshakes) Clone() credentials.TransportCredentials { return h }

func (h *handshakes) last() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// handshakeError says in one line why clusterd's certificate was refused
// (exit 4: the server answered, but is not who it should be).
func handshakeError(o Options, err error) *Error {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var hn x509.HostnameError
	var rh tls.RecordHeaderError
	var msg string
	switch {
	case errors.As(err, &ua):
		ca := "the system's CAs"
		if o.CACert != "" {
			ca = o.CACert
		}
		msg = fmt.Sprintf("clusterd at %s presented a certificate not signed by %s (wrong --cacert?)", o.Addr, ca)
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		msg = fmt.Sprintf("clusterd at %s presented an expired certificate (valid until %s)", o.Addr, ci.Cert.NotAfter.UTC().Format(time.RFC3339))
	case errors.As(err, &hn):
		msg = fmt.Sprintf("clusterd's certificate is not valid for %s: %v", hn.Host, hn)
	case errors.As(err, &rh):
		msg = fmt.Sprintf("clusterd at %s does not speak TLS (drop --cacert/--cert/--key, or start clusterd with TLS)", o.Addr)
	default:
		msg = fmt.Sprintf("TLS with clusterd at %s failed: %v", o.Addr, err)
	}
	return &Error{Code: ExitDenied, Msg: msg, Err: err}
}

// speaksTLS reports whether addr completes a TLS handshake: it tells a
// clusterd serving TLS from something else when a plaintext dial failed.
func speaksTLS(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} // only probing; nothing is sent
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
