package limits_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/acli-dev/acli/manager/limits"
)

// holdServer returns a dialer of a server with /test.Hold/Call, which
// blocks until release is closed or the call ends (entered receives its
// caller), and /test.Hold/Watch, which sends one message then blocks until
// release. The caller's user is the "user" metadata.
func holdServer(t *testing.T, cfg limits.Config) (dial func() *grpc.ClientConn, entered chan string, release chan struct{}) {
	entered, release = make(chan string, 100), make(chan struct{})
	cfg.Principal = func(ctx context.Context) string {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("user"); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	srv := grpc.NewServer(limits.ServerOptions(cfg)...)
	hold := func(ctx context.Context) {
		md, _ := metadata.FromIncomingContext(ctx)
		entered <- md.Get("user")[0]
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Hold",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Call", Handler: func(_ any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			req := &emptypb.Empty{}
			if err := dec(req); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, _ any) (any, error) { hold(ctx); return &emptypb.Empty{}, nil }
			return in(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/test.Hold/Call"}, h)
		}}},
		Streams: []grpc.StreamDesc{{StreamName: "Watch", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
			if err := ss.SendMsg(&emptypb.Empty{}); err != nil { // tells the client it was admitted
				return err
			}
			<-release
			return nil
		}}},
	}, struct{}{})
	lis := bufconn.Listen(1 << 20)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	dial = func() *grpc.ClientConn {
		conn, err := grpc.NewClient("passthrough:///bufconn",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	return dial, entered, release
}

func as(ctx context.Context, user string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "user", user)
}

// One user's calls beyond its share wait, then are refused; another user's
// calls go through meanwhile.
func TestCallsAreSharedPerPrincipal(t *testing.T) {
	dial, entered, release := holdServer(t, limits.Config{CallsPerPrincipal: 2, QueuedPerPrincipal: 1})
	conn := dial()
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	results := make(chan error, 10)
	call := func(user string) {
		results <- conn.Invoke(as(ctx, user), "/test.Hold/Call", &emptypb.Empty{}, &emptypb.Empty{})
	}
	for range 2 {
		go call("alice")
	}
	for range 2 {
		if u := <-entered; u != "alice" {
			t.Fatalf("%s entered, want alice", u)
		}
	}
	// A third call waits for a slot. Until it is the one waiting (a probe
	// below may hold the queue for a moment), it is refused and retries.
	go func() {
		for {
			err := conn.Invoke(as(ctx, "alice"), "/test.Hold/Call", &emptypb.Empty{}, &emptypb.Empty{})
			if status.Code(err) != codes.ResourceExhausted {
				results <- err
				return
			}
		}
	}()
	// Once it waits, a further call is refused.
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err = conn.Invoke(as(pctx, "alice"), "/test.Hold/Call", &emptypb.Empty{}, &emptypb.Empty{})
		pcancel()
		if status.Code(err) == codes.ResourceExhausted || time.Now().After(deadline) {
			break
		}
	}
	wantRefused(t, err, "alice already has 2 calls running and 1 waiting, the most one user may; retry later")
	// bob is not held back by alice.
	go call("bob")
	select {
	case u := <-entered:
		if u != "bob" {
			t.Fatalf("%s entered while alice's share is full, want bob", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bob's call waited behind alice's")
	}
	close(release)
	for range 4 { // alice's two, her queued one, bob's
		if err := <-results; err != nil {
			t.Fatalf("a held call: %v", err)
		}
	}
	if u := <-entered; u != "alice" {
		t.Fatalf("%s entered, want alice's queued call", u)
	}
}

// One user's streams are capped across connections; others still open theirs.
func TestStreamsAreSharedPerPrincipal(t *testing.T) {
	dial, _, release := holdServer(t, limits.Config{StreamsPerPrincipal: 2})
	defer close(release)
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	desc := &grpc.StreamDesc{ServerStreams: true}
	open := func(conn *grpc.ClientConn, user string) error {
		cs, err := conn.NewStream(as(ctx, user), desc, "/test.Hold/Watch")
		if err != nil {
			return err
		}
		if err := cs.SendMsg(&emptypb.Empty{}); err != nil {
			return err
		}
		if err := cs.CloseSend(); err != nil {
			return err
		}
		return cs.RecvMsg(&emptypb.Empty{})
	}
	// alice's streams count together over her connections.
	for i := range 2 {
		if err := open(dial(), "alice"); err != nil {
			t.Fatalf("alice's stream %d: %v", i+1, err)
		}
	}
	wantRefused(t, open(dial(), "alice"), "alice already has 2 streams open (event and task watches), the most one user may; close one first")
	if err := open(dial(), "bob"); err != nil {
		t.Fatalf("bob's stream: %v", err)
	}
}
