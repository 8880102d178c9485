// Package leader is what a clusterd that shares its store with other
// managers does while another one leads: it forwards every acli RPC to the
// leader, so a client may talk to any manager.
package leader

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/acli-dev/acli/client"
)

// LeaderHeader is the response metadata key naming the leader's address on
// every forwarded call and on a follower's Unavailable answers.
const LeaderHeader = "acli-leader"

// StaleHeader marks a read a follower answered from its own copy of the
// store without a quorum to confirm it (client.StaleHeader).
const StaleHeader = client.StaleHeader

// ForwardedPrefix starts the metadata keys a forwarding manager sets; a
// client's own keys of that form are dropped, never passed on.
const ForwardedPrefix = "acli-forwarded-"

// Lookup returns the current leader's address, or an error when none leads.
type Lookup func(ctx context.Context) (string, error)

// Forwarder proxies calls to the leader, whatever their service, as raw
// frames: it needs no knowledge of the API.
type Forwarder struct {
	lookup Lookup
	dial   []grpc.DialOption
	// Identity, when set, returns metadata vouching for the caller of a
	// call, added to it on its way to the leader.
	Identity func(ctx context.Context) metadata.MD
	// Local, when set, may serve a call here instead: it returns a
	// connection answering it, a release to call once the call ends, and
	// why the answer may be stale ("" when it is not).
	Local func(ctx context.Context, method string) (conn *grpc.ClientConn, release func(), stale string, ok bool)

	mu   sync.Mutex
	addr string
	conn *grpc.ClientConn
}

// NewForwarder returns a forwarder that finds the leader with lookup.
// Without dial options it connects in plain text.
func NewForwarder(lookup Lookup, dial ...grpc.DialOption) *Forwarder {
	if len(dial) == 0 {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return &Forwarder{lookup: lookup, dial: dial}
}

// ServerOptions make a grpc.Server forward every call it has no service
// for (register only health on it) through f.
func (f *Forwarder) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.UnknownServiceHandler(f.handle),
	}
}

// Close drops the connection to the leader.
func (f *Forwarder) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}

// leaderConn returns a connection to the current leader.
func (f *Forwarder) leaderConn(ctx context.Context) (*grpc.ClientConn, string, error) {
	addr, err := f.lookup(ctx)
	if err != nil {
		return nil, "", status.Errorf(codes.Unavailable, "this manager is not the leader and no leader is known (%v); retry", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil && f.addr == addr {
		return f.conn, addr, nil
	}
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, f.dial...)
	if err != nil {
		return nil, addr, status.Errorf(codes.Unavailable, "this manager is not the leader; the leader %s: %v", addr, err)
	}
	f.conn, f.addr = conn, addr
	return conn, addr, nil
}

func (f *Forwarder) handle(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "no method on the stream")
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	if f.Local != nil {
		if conn, release, stale, ok := f.Local(ctx, method); ok {
			defer release()
			var hdr metadata.MD
			if stale != "" {
				hdr = metadata.Pairs(StaleHeader, stale)
			}
			return f.proxy(ctx, cancel, ss, conn, method, "", hdr)
		}
	}
	conn, addr, err := f.leaderConn(ctx)
	if addr != "" {
		ss.SetTrailer(metadata.Pairs(LeaderHeader, addr))
	}
	if err != nil {
		return err
	}
	return f.proxy(ctx, cancel, ss, conn, method, addr, metadata.Pairs(LeaderHeader, addr))
}

// proxy relays one call to conn: addr names the leader it goes to ("" for
// this manager's own copy, whose caller was authorized here), hdr is added
// to the response's header.
func (f *Forwarder) proxy(ctx context.Context, cancel context.CancelFunc, ss grpc.ServerStream, conn *grpc.ClientConn, method, addr string, hdr metadata.MD) error {
	in, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	for k, v := range in {
		if strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") || k == "content-type" || k == "user-agent" ||
			strings.HasPrefix(k, ForwardedPrefix) {
			continue
		}
		out[k] = v
	}
	if f.Identity != nil && addr != "" {
		out = metadata.Join(out, f.Identity(ctx))
	}
	cs, err := conn.NewStream(metadata.NewOutgoingContext(ctx, out),
		&grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return unavailable(err, addr)
	}
	// Client to leader.
	upErr := make(chan error, 1)
	go func() {
		for {
			fr := &frame{}
			if err := ss.RecvMsg(fr); err != nil {
				if errors.Is(err, io.EOF) {
					upErr <- cs.CloseSend()
					return
				}
				cancel()
				upErr <- err
				return
			}
			if err := cs.SendMsg(fr); err != nil {
				// The leader's answer (read below) says why.
				upErr <- nil
				return
			}
		}
	}()
	// Leader to client.
	got, err := cs.Header()
	if err != nil {
		return unavailable(err, addr)
	}
	if err := ss.SendHeader(metadata.Join(got, hdr)); err != nil {
		return err
	}
	for {
		fr := &frame{}
		if err := cs.RecvMsg(fr); err != nil {
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return unavailable(err, addr)
		}
		if err := ss.SendMsg(fr); err != nil {
			return err
		}
	}
}

// unavailable returns the leader's own status, except that a leader that
// cannot be reached is said to be so.
func unavailable(err error, addr string) error {
	st := status.Convert(err)
	if st.Code() == codes.Unavailable && !strings.Contains(st.Message(), "leader") {
		return status.Errorf(codes.Unavailable, "this manager forwards to the leader %s, which did not answer: %s", addr, st.Message())
	}
	return err
}

// frame is one message, forwarded without decoding.
type frame struct{ b []byte }

// rawCodec passes frames through and encodes everything else (the health
// service of the follower itself) as protobuf.
type rawCodec struct{}

var protoCodec = encoding.GetCodecV2("proto")

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		return mem.BufferSlice{mem.SliceBuffer(f.b)}, nil
	}
	return protoCodec.Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		f.b = data.Materialize()
		return nil
	}
	return protoCodec.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }
