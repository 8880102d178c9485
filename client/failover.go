package client

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

// FailoverWindow bounds how long a call keeps retrying while the managers
// elect a new leader (lease TTL, election, the new leader's start), within
// the command's own timeout.
const FailoverWindow = 15 * time.Second

// StaleHeader is the response metadata key of a read a manager answered
// from its own copy of the store without a quorum to confirm it: its value
// says why and since when the answer may be stale.
const StaleHeader = "acli-stale"

// SplitServers splits a --server / ACLI_SERVER list ("a:2030,b:2030").
func SplitServers(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// managers resolves to every listed manager; gRPC's pick_first connects to
// the first that accepts and moves on when its connection breaks.
func managers(addrs []string) *manual.Resolver {
	r := manual.NewBuilderWithScheme("acli-managers")
	st := resolver.State{}
	for _, a := range addrs {
		st.Addresses = append(st.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(st)
	return r
}

// retryUnary retries a call a manager answered Unavailable while the
// leadership moves. It retries only what cannot be applied twice: any call
// the manager says it did not carry out (not the leader, no leader yet,
// shutting down), reads (Get, List), and, given several managers, a call
// whose connection could not be made at all. A change whose connection broke
// mid-call is not retried: its outcome is unknown, and the error says so.
func retryUnary(several bool) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		deadline := time.Now().Add(FailoverWindow)
		delay := 50 * time.Millisecond
		for {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil || !retryable(method, err, several) || time.Now().After(deadline) {
				return err
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
			delay = min(2*delay, 200*time.Millisecond)
		}
	}
}

func retryable(method string, err error, several bool) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	msg := st.Message()
	switch {
	case strings.Contains(msg, "not the leader"), strings.Contains(msg, "no leader"),
		strings.Contains(msg, "shutting down"):
		return true
	case isRead(method):
		return several || strings.Contains(msg, "leader")
	case several:
		return strings.Contains(msg, "connection refused") || strings.Contains(msg, "while dialing")
	}
	return false
}

// isRead reports whether a full method name ("/acli.v1.VmService/GetVm")
// only reads.
func isRead(method string) bool {
	name := method[strings.LastIndex(method, "/")+1:]
	return strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List")
}

// Retryable reports whether a failed stream (a task or event watch) may be
// opened again on another manager: the manager answered Unavailable.
func Retryable(err error) bool {
	return status.Code(err) == codes.Unavailable
}
