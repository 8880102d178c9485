package limits

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Config tunes the limits; the zero Config is clusterd's.
type Config struct{}

// ServerOptions returns the options that enforce every limit. Give them to
// grpc.NewServer before other interceptors, so nothing else sees a request
// that breaks one.
func ServerOptions(cfg Config) []grpc.ServerOption {
	l := &limiter{}
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxReadBytes),
		grpc.ForceServerCodecV2(codec{base: encoding.GetCodecV2("proto"), refused: &l.refused}),
		grpc.ChainUnaryInterceptor(l.unary),
		grpc.ChainStreamInterceptor(l.stream),
	}
}

type limiter struct {
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
	return nil
}

func (l *limiter) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := l.admit(req); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (l *limiter) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
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
