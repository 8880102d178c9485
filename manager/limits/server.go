package limits

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Config overrides the caps (tests use small ones); zero fields take the
// defaults.
type Config struct {
	StreamsPerConn int
	StreamsTotal   int
	// Principal names the caller of a call (clusterd's auth.UserFromContext,
	// with authentication before these limits); nil or "": no per-principal
	// caps.
	Principal           func(context.Context) string
	CallsPerPrincipal   int
	QueuedPerPrincipal  int
	StreamsPerPrincipal int
}

// ServerOptions returns the options that enforce every limit. Give them to
// grpc.NewServer before other interceptors, so nothing else sees a request
// that breaks one.
func ServerOptions(cfg Config) []grpc.ServerOption {
	if cfg.StreamsPerConn <= 0 {
		cfg.StreamsPerConn = DefaultStreamsPerConn
	}
	if cfg.StreamsTotal <= 0 {
		cfg.StreamsTotal = DefaultStreamsTotal
	}
	if cfg.CallsPerPrincipal <= 0 {
		cfg.CallsPerPrincipal = DefaultCallsPerPrincipal
	}
	if cfg.QueuedPerPrincipal <= 0 {
		cfg.QueuedPerPrincipal = DefaultQueuedPerPrincipal
	}
	if cfg.StreamsPerPrincipal <= 0 {
		cfg.StreamsPerPrincipal = DefaultStreamsPerPrincipal
	}
	l := &limiter{cfg: cfg, shares: newShares(cfg)}
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxReadBytes),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		grpc.ForceServerCodecV2(codec{base: encoding.GetCodecV2("proto"), refused: &l.refused}),
		grpc.StatsHandler(l),
		grpc.ChainUnaryInterceptor(l.unary),
		grpc.ChainStreamInterceptor(l.stream),
	}
}

type limiter struct {
	cfg     Config
	shares  *shares
	streams atomic.Int64
	// refused holds, by the message it was decoding into, why the codec
	// refused a request: gRPC turns a codec error into Internal, so the
	// codec lets the call reach the interceptors, which answer for it.
	refused sync.Map
}

// codec is gRPC's proto codec, except that a request it cannot accept
// (too large, not valid protobuf) becomes InvalidArgument.
type codec struct {
	base    encoding.CodecV2
	refused *sync.Map
}

func (c codec) Name() string                           { return c.base.Name() }
func (c codec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if n := data.Len(); n > MaxRequestBytes {
		c.refused.Store(v, status.Errorf(codes.InvalidArgument, "the request is %d bytes; clusterd accepts at most %d", n, MaxRequestBytes))
		return nil
	}
	if err := c.base.Unmarshal(data, v); err != nil {
		what := "message"
		if m, ok := v.(proto.Message); ok {
			what = string(m.ProtoReflect().Descriptor().FullName())
		}
		c.refused.Store(v, status.Errorf(codes.InvalidArgument, "the request is not a valid %s: %v", what, err))
	}
	return nil
}

// admit returns why req may not be served, nil if it may.
func (l *limiter) admit(req any) error {
	if err, ok := l.refused.LoadAndDelete(req); ok {
		return err.(error)
	}
	if m, ok := req.(proto.Message); ok {
		return Check(m)
	}
	return nil
}

func (l *limiter) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := l.admit(req); err != nil {
		return nil, err
	}
	if who := l.principal(ctx); who != "" {
		done, err := l.shares.call(ctx, who)
		if err != nil {
			return nil, err
		}
		defer done()
	}
	return h(ctx, req)
}

func (l *limiter) principal(ctx context.Context) string {
	if l.cfg.Principal == nil {
		return ""
	}
	return l.cfg.Principal(ctx)
}

func (l *limiter) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	conn, _ := ss.Context().Value(connKey{}).(*connStreams)
	if conn != nil {
		if conn.n.Add(1) > int64(l.cfg.StreamsPerConn) {
			conn.n.Add(-1)
			return status.Errorf(codes.ResourceExhausted, "this connection already has %d streams open (event and task watches), the most one connection may; close one first", l.cfg.StreamsPerConn)
		}
		defer conn.n.Add(-1)
	}
	if l.streams.Add(1) > int64(l.cfg.StreamsTotal) {
		l.streams.Add(-1)
		return status.Errorf(codes.ResourceExhausted, "clusterd already serves %d streams (event and task watches), the most it serves at once; retry later", l.cfg.StreamsTotal)
	}
	defer l.streams.Add(-1)
	if who := l.principal(ss.Context()); who != "" {
		done, err := l.shares.stream(who)
		if err != nil {
			return err
		}
		defer done()
	}
	return h(srv, &admittedStream{ServerStream: ss, l: l})
}

// admittedStream applies the request checks to each message a stream receives.
type admittedStream struct {
	grpc.ServerStream
	l *limiter
}

func (s *admittedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.l.admit(m)
}

// connStreams counts the streams open on one connection.
type connStreams struct{ n atomic.Int64 }

type connKey struct{}

// TagConn implements stats.Handler: every call on a connection sees its counter.
func (l *limiter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connKey{}, &connStreams{})
}

func (l *limiter) HandleConn(context.Context, stats.ConnStats)                     {}
func (l *limiter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (l *limiter) HandleRPC(context.Context, stats.RPCStats)                       {}
