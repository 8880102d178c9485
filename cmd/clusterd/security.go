package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	flag "github.com/spf13/pflag"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/auth"
	"github.com/acli-dev/acli/manager/pki"
)

// Files clusterd init writes under DATA/pki, and the context file beside.
const (
	pkiDir        = "pki"
	caCertFile    = "ca.crt"
	caKeyFile     = "ca.key"
	serverCert    = "server.crt"
	serverKey     = "server.key"
	adminCert     = "admin.crt"
	adminKey      = "admin.key"
	contextFile   = "acli.yaml"
	caValidity    = 10 * 365 * 24 * time.Hour
	certValidity  = 365 * 24 * time.Hour
	adminUserName = "admin"
)

// securityOptions are the TLS and authentication flags.
type securityOptions struct {
	tlsCert, tlsKey, clientCA string
	insecureListen            bool
	anonymousRole             string
	auditDir                  string
	auditMaxSize              int64
}

func addSecurityFlags(fs *flag.FlagSet) *securityOptions {
	o := &securityOptions{}
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve TLS 1.3 with this certificate (default DATA/pki/server.crt when clusterd init made it)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "key of --tls-cert (default DATA/pki/server.key)")
	fs.StringVar(&o.clientCA, "client-ca", "", "accept client certificates signed by this CA: CN is the user, O the role (default DATA/pki/ca.crt)")
	fs.BoolVar(&o.insecureListen, "insecure-listen", false, "allow listening beyond loopback without TLS (unsafe: anyone who reaches the port gets --anonymous-role)")
	fs.StringVar(&o.anonymousRole, "anonymous-role", "", "role of callers without certificate or token: viewer, operator, admin or none (default admin on plaintext loopback, else none)")
	fs.StringVar(&o.auditDir, "audit-dir", "", "directory of the audit log (default DATA/audit)")
	fs.Int64Var(&o.auditMaxSize, "audit-max-size", 16<<20, "rotate the audit log at this many bytes (5 rotated files are kept)")
	return o
}

// serving is what the security flags resolve to.
type serving struct {
	tls       *tls.Config // nil: plaintext
	cert      *x509.Certificate
	clientCAs *x509.CertPool
	anonymous auth.Role
}

// resolve applies the defaults of an initialised data dir and checks the
// flags against each other; errors are usage errors.
func (o *securityOptions) resolve(dataDir string) (*serving, error) {
	dir := filepath.Join(dataDir, pkiDir)
	if o.tlsCert == "" && o.tlsKey == "" && exists(filepath.Join(dir, serverCert)) {
		o.tlsCert, o.tlsKey = filepath.Join(dir, serverCert), filepath.Join(dir, serverKey)
		if o.clientCA == "" && exists(filepath.Join(dir, caCertFile)) {
			o.clientCA = filepath.Join(dir, caCertFile)
		}
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if o.clientCA != "" && o.tlsCert == "" {
		return nil, errors.New("--client-ca needs TLS: give --tls-cert and --tls-key too")
	}
	s := &serving{}
	if o.tlsCert != "" {
		kp, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %v", err)
		}
		if s.cert, err = x509.ParseCertificate(kp.Certificate[0]); err != nil {
			return nil, fmt.Errorf("--tls-cert: %v", err)
		}
		// Client certificates are requested, not verified by TLS: the
		// interceptor verifies them, so that a wrong or expired one gets a
		// clear Unauthenticated answer instead of a closed connection.
		s.tls = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{kp}, ClientAuth: tls.RequestClientCert}
		if o.clientCA != "" {
			if s.clientCAs, err = pki.Pool(o.clientCA); err != nil {
				return nil, fmt.Errorf("--client-ca: %v", err)
			}
		}
	}
	switch o.anonymousRole {
	case "":
		s.anonymous = auth.None
	case "none":
		s.anonymous = auth.None
	default:
		r, err := auth.ParseRole(o.anonymousRole)
		if err != nil {
			return nil, fmt.Errorf("--anonymous-role: %v, or none", err)
		}
		s.anonymous = r
	}
	return s, nil
}

// checkListen refuses plaintext beyond loopback unless told, before any
// port is bound, and picks the anonymous role's default for the address.
func (o *securityOptions) checkListen(s *serving, listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q is not host:port, e.g. 127.0.0.1:2030", listen)
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if s.tls == nil && !loopback && !o.insecureListen {
		return fmt.Errorf("refusing to listen on %s without TLS: give --tls-cert/--tls-key (clusterd init makes them), listen on loopback, or accept the risk with --insecure-listen", listen)
	}
	if o.anonymousRole == "" && s.tls == nil && loopback {
		s.anonymous = auth.Admin
	}
	return nil
}

func exists(file string) bool {
	_, err := os.Stat(file)
	return err == nil
}

// runInit is `clusterd init`: a CA, the server certificate and an admin
// credential for a new cluster, and an acli context file using them.
func runInit(args []string, stdout, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "clusterd init: "+format+"\n", a...)
		return code
	}
	fs := flag.NewFlagSet("clusterd init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dataDir := fs.String("data-dir", "", "data directory of the new cluster (required)")
	listen := fs.String("listen", "127.0.0.1:2030", "address acli will reach clusterd at (written in the context)")
	hosts := fs.String("hosts", "", "extra names and IPs for the server certificate, comma-separated")
	name := fs.String("context", "", "name of the context written (default the data dir's base name)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "usage: clusterd init --data-dir DIR [--listen ADDR] [--hosts NAME,IP,...] [--context NAME]")
			fs.PrintDefaults()
			return 0
		}
		return fail(2, "%s", flagError(fs, err))
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q (see clusterd init --help)", fs.Arg(0))
	}
	if *dataDir == "" {
		return fail(2, "--data-dir is required, e.g. --data-dir /var/lib/clusterd")
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fail(2, "--listen %q is not host:port, e.g. 127.0.0.1:2030", *listen)
	}
	names := []string{"localhost", "127.0.0.1", "::1", "clusterd"} // clusterd: the authority acli uses with a --server list
	for _, h := range append([]string{host}, strings.Split(*hosts, ",")...) {
		h = strings.TrimSpace(h)
		if h != "" && !slices.Contains(names, h) && !net.ParseIP(h).IsUnspecified() {
			names = append(names, h)
		}
	}
	dir := filepath.Join(*dataDir, pkiDir)
	if exists(filepath.Join(dir, caCertFile)) {
		return fail(5, "%s already holds a cluster CA; not replacing it", dir)
	}
	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		return fail(1, "%v", err)
	}
	ctxName := *name
	if ctxName == "" {
		ctxName = filepath.Base(abs)
	}
	ca, err := pki.NewCA("acli cluster CA "+ctxName, caValidity)
	if err != nil {
		return fail(1, "%v", err)
	}
	srv, err := ca.Server(names, certValidity)
	if err != nil {
		return fail(1, "%v", err)
	}
	admin, err := ca.Client(adminUserName, "admin", certValidity)
	if err != nil {
		return fail(1, "%v", err)
	}
	p := func(f string) string { return filepath.Join(abs, pkiDir, f) }
	for _, w := range []struct {
		pair      *pki.Pair
		cert, key string
	}{{ca, caCertFile, caKeyFile}, {srv, serverCert, serverKey}, {admin, adminCert, adminKey}} {
		if err := w.pair.Write(p(w.cert), p(w.key)); err != nil {
			return fail(1, "%v", err)
		}
	}
	cfg := &client.Config{CurrentContext: ctxName}
	server := *listen
	if net.ParseIP(host).IsUnspecified() {
		server = net.JoinHostPort("127.0.0.1", strings.TrimPrefix(*listen, host+":"))
	}
	cfg.Set(client.Context{Name: ctxName, Server: server, CACert: p(caCertFile), Cert: p(adminCert), Key: p(adminKey)})
	cf := filepath.Join(abs, contextFile)
	if err := cfg.Save(cf); err != nil {
		return fail(1, "%v", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "clusterd init: CA, server certificate (%s) and admin credential in %s (mode 0600)\n", strings.Join(names, ", "), filepath.Join(abs, pkiDir))
	fmt.Fprintf(&b, "clusterd init: start it with: clusterd --data-dir %s --listen %s\n", abs, *listen)
	fmt.Fprintf(&b, "clusterd init: acli uses it with: export ACLI_CONFIG=%s\n", cf)
	_, _ = stdout.Write(b.Bytes())
	return 0
}
