package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	flag "github.com/spf13/pflag"
	"net"
	"os"
	"strings"
	"time"

	"github.com/acli-dev/acli/manager/store/etcd"
)

// storeOptions say where the model is kept: bolt (one manager, the data
// dir's state.db) or etcd (several managers, one elected leader).
type storeOptions struct {
	spec      string
	cacert    string
	cert      string
	key       string
	namespace string
	leaseTTL  time.Duration
	advertise string
}

func addStoreFlags(fs *flag.FlagSet) *storeOptions {
	o := &storeOptions{}
	fs.StringVar(&o.spec, "store", "bolt", "where the model is kept: bolt (DATA_DIR/state.db, one manager) or etcd://HOST:PORT[,HOST:PORT...] (several managers share it; one is elected leader)")
	fs.StringVar(&o.cacert, "etcd-cacert", "", "CA certificate (PEM) verifying the etcd members; with it etcd is reached over TLS")
	fs.StringVar(&o.cert, "etcd-cert", "", "client certificate (PEM) presented to etcd (with --etcd-key)")
	fs.StringVar(&o.key, "etcd-key", "", "private key (PEM) of --etcd-cert")
	fs.StringVar(&o.namespace, "etcd-namespace", "/acli", "etcd key prefix of this cluster (several clusters may share one etcd)")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", 2*time.Second, "leadership lease: a leader that stops renewing it for this long is replaced (whole seconds, at least 1s)")
	fs.StringVar(&o.advertise, "advertise", "", "host:port the other managers forward requests to (default: the --listen address)")
	return o
}

// etcdConfig checks the flags and returns the etcd configuration, or nil
// for the bolt store.
func (o *storeOptions) etcdConfig() (*etcd.Config, error) {
	usage := fmt.Errorf("--store %q: use bolt, or etcd://HOST:PORT[,HOST:PORT...] (e.g. etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379)", o.spec)
	rest, isEtcd := strings.CutPrefix(o.spec, "etcd://")
	switch {
	case o.spec == "bolt":
		if o.cacert != "" || o.cert != "" || o.key != "" {
			return nil, fmt.Errorf("--etcd-cacert, --etcd-cert and --etcd-key apply only to --store etcd://HOST:PORT")
		}
		return nil, nil
	case !isEtcd || rest == "":
		return nil, usage
	}
	if o.leaseTTL < time.Second || o.leaseTTL%time.Second != 0 {
		return nil, fmt.Errorf("--lease-ttl %v must be whole seconds, at least 1s (e.g. 2s)", o.leaseTTL)
	}
	if !strings.HasPrefix(o.namespace, "/") || strings.TrimRight(o.namespace, "/") == "" {
		return nil, fmt.Errorf("--etcd-namespace %q must start with / and name something, e.g. /acli", o.namespace)
	}
	if o.advertise != "" {
		if _, port, err := net.SplitHostPort(o.advertise); err != nil || port == "0" {
			return nil, fmt.Errorf("--advertise %q is not host:port, e.g. 10.0.0.1:2030", o.advertise)
		}
	}
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	scheme := "http://"
	if tlsCfg != nil {
		scheme = "https://"
	}
	cfg := &etcd.Config{Namespace: o.namespace, TLS: tlsCfg}
	for _, ep := range strings.Split(rest, ",") {
		if _, port, err := net.SplitHostPort(ep); err != nil || port == "" {
			return nil, fmt.Errorf("--store: etcd member %q is not HOST:PORT, e.g. 10.0.0.1:2379", ep)
		}
		cfg.Endpoints = append(cfg.Endpoints, scheme+ep)
	}
	return cfg, nil
}

func (o *storeOptions) tlsConfig() (*tls.Config, error) {
	if o.cacert == "" && o.cert == "" && o.key == "" {
		return nil, nil
	}
	if (o.cert == "") != (o.key == "") {
		return nil, fmt.Errorf("--etcd-cert and --etcd-key go together")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.cacert != "" {
		pem, err := os.ReadFile(o.cacert)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-cacert %s holds no PEM certificate", o.cacert)
		}
	}
	if o.cert != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
