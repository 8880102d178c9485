// Package client connects acli to clusterd over gRPC: dialing with a bounded
// connect timeout, the bearer token, a large receive limit, and the single
// table that turns gRPC status codes into acli exit codes.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// DefaultAddr is where clusterd listens unless --server or ACLI_SERVER say otherwise.
const DefaultAddr = "127.0.0.1:2030"

// DefaultDialTimeout bounds how long acli waits for clusterd to accept a connection.
const DefaultDialTimeout = 3 * time.Second

// MaxRecvMsgSize lets one ListVms answer carry 50,000 VMs with disks and NICs.
const MaxRecvMsgSize = 512 << 20

// MaxRequestBytes is the largest request clusterd accepts (its
// limits.MaxRequestBytes); acli refuses a larger one before sending it.
const MaxRequestBytes = 1 << 20

// checkRequestSize refuses, as bad input, a request clusterd would refuse
// for its size: gRPC itself answers a message over 4 MiB with
// ResourceExhausted, which is not what it is.
func checkRequestSize(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if m, ok := req.(proto.Message); ok {
		if n := proto.Size(m); n > MaxRequestBytes {
			return status.Errorf(codes.InvalidArgument, "the request is %d bytes; clusterd accepts at most %d", n, MaxRequestBytes)
		}
	}
	return invoke(ctx, method, req, reply, cc, opts...)
}

// Options say where and how to connect.
type Options struct {
	// Addr is host:port of clusterd, or a comma-separated list of the
	// managers of one cluster: acli connects to the first that answers and
	// fails over to the others (failover.go).
	Addr string
	// Token, when set, is sent as "authorization: Bearer <token>" on every call.
	Token string
	// DialTimeout bounds the wait for a ready connection (DefaultDialTimeout when zero).
	DialTimeout time.Duration
	// CACert, when set, turns on TLS and names the PEM file of the CA that
	// signed clusterd's certificate. Cert and Key are the client's own
	// certificate (TLS with the system's CAs when CACert is empty).
	CACert, Cert, Key string
}

// TLS reports whether the options ask for TLS.
func (o Options) TLS() bool { return o.CACert != "" || o.Cert != "" || o.Key != "" }

// Client holds one connection and a stub per service.
type Client struct {
	conn        *grpc.ClientConn
	Cluster     acliv1.ClusterServiceClient
	Host        acliv1.HostServiceClient
	Vm          acliv1.VmServiceClient
	Network     acliv1.NetworkServiceClient
	VolumeGroup acliv1.VolumeGroupServiceClient
	Task        acliv1.TaskServiceClient
	Event       acliv1.EventServiceClient
	Sim         acliv1.SimServiceClient
	Image       acliv1.ImageServiceClient
	Snapshot    acliv1.SnapshotServiceClient
	Container   acliv1.StorageContainerServiceClient
	Token       acliv1.TokenServiceClient
	Audit       acliv1.AuditServiceClient
}

// New wraps an established connection (tests use it with bufconn).
func New(cc grpc.ClientConnInterface) *Client {
	c := &Client{
		Cluster:     acliv1.NewClusterServiceClient(cc),
		Host:        acliv1.NewHostServiceClient(cc),
		Vm:          acliv1.NewVmServiceClient(cc),
		Network:     acliv1.NewNetworkServiceClient(cc),
		VolumeGroup: acliv1.NewVolumeGroupServiceClient(cc),
		Task:        acliv1.NewTaskServiceClient(cc),
		Event:       acliv1.NewEventServiceClient(cc),
		Sim:         acliv1.NewSimServiceClient(cc),
		Image:       acliv1.NewImageServiceClient(cc),
		Snapshot:    acliv1.NewSnapshotServiceClient(cc),
		Container:   acliv1.NewStorageContainerServiceClient(cc),
		Token:       acliv1.NewTokenServiceClient(cc),
		Audit:       acliv1.NewAuditServiceClient(cc),
	}
	if conn, ok := cc.(*grpc.ClientConn); ok {
		c.conn = conn
	}
	return c
}

// Close releases the connection.
func (c *Client) Close() error {
	if c == nil || c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Dial connects to clusterd and waits until the connection is ready, so an
// unreachable manager is reported once, up front, as *UnreachableError
// (exit 6) instead of as the first RPC's Unavailable.
func Dial(ctx context.Context, o Options, extra ...grpc.DialOption) (*Client, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	// The dialer remembers the last low-level failure: gRPC's connectivity
	// states carry no reason, and "connection refused" is what operators need.
	var lastMu sync.Mutex
	var lastErr error
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			lastMu.Lock()
			lastErr = err
			lastMu.Unlock()
		}
		return conn, err
	}
	addrs := SplitServers(o.Addr)
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	var hs *handshakes
	if o.TLS() {
		cfg, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		hs = &handshakes{TransportCredentials: credentials.NewTLS(cfg)}
		creds = hs
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(dialer),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxRecvMsgSize)),
		grpc.WithChainUnaryInterceptor(checkRequestSize, retryUnary(len(addrs) > 1)),
	}
	if o.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(o.Token)))
	}
	target := "passthrough:///" + o.Addr
	if len(addrs) > 1 {
		r := managers(addrs)
		target = r.Scheme() + ":///clusterd"
		opts = append(opts, grpc.WithResolvers(r))
	}
	opts = append(opts, extra...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, &UnreachableError{Addr: o.Addr, Err: err}
	}
	wctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	conn.Connect()
	for {
		s := conn.GetState()
		if s == connectivity.Ready {
			return New(conn), nil
		}
		// Fail fast, like a gRPC call without WaitForReady: a refused or
		// unroutable address will not heal within one command.
		if s == connectivity.TransientFailure || !conn.WaitForStateChange(wctx, s) {
			_ = conn.Close()
			lastMu.Lock()
			reason := lastErr
			lastMu.Unlock()
			if reason == nil && hs != nil {
				if herr := hs.last(); herr != nil {
					return nil, handshakeError(o, herr)
				}
			}
			if reason == nil && s == connectivity.TransientFailure {
				if !o.TLS() && speaksTLS(ctx, addrs[0]) {
					return nil, &Error{Code: ExitDenied, Msg: fmt.Sprintf("clusterd at %s requires TLS: give --cacert (and --cert/--key or --token), or a --context", addrs[0])}
				}
				// The TCP connection was made: something else listens there.
				reason = errors.New("something answers there, but not clusterd's gRPC (wrong port?)")
			}
			if reason == nil {
				reason = wctx.Err()
				if errors.Is(reason, context.DeadlineExceeded) {
					reason = fmt.Errorf("no answer within %s", o.DialTimeout)
				}
			}
			return nil, &UnreachableError{Addr: o.Addr, Err: reason}
		}
	}
}

// UnreachableError means clusterd could not be reached at all (exit 6).
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach clusterd at %s: %s", e.Addr, reasonText(e.Err))
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// reasonText trims Go's "dial tcp 127.0.0.1:1: connect: " prefix down to the cause.
func reasonText(err error) string {
	if err == nil {
		return "unknown error"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		s := op.Err.Error()
		return strings.TrimPrefix(s, "connect: ")
	}
	return err.Error()
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: the token protects loopback and lab
// setups; TLS transport is configured separately when used.
func (bearer) RequireTransportSecurity() bool { return false }
