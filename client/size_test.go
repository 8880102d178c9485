package client

import (
	"context"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A request over clusterd's size limit is bad input (exit 2) and is not
// sent; gRPC alone would answer ResourceExhausted (exit 5).
func TestOversizedRequestIsUsageError(t *testing.T) {
	sent := false
	invoke := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		sent = true
		return nil
	}
	big := &acliv1.CreateVmRequest{Name: "v", Description: strings.Repeat("d", 5<<20)}
	err := checkRequestSize(context.Background(), "/acli.v1.VmService/CreateVm", big, nil, nil, invoke)
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != "the request is 5242888 bytes; clusterd accepts at most 1048576" {
		t.Fatalf("got %v %q", st.Code(), st.Message())
	}
	if ExitCode(err) != ExitUsage || sent {
		t.Fatalf("exit %d, sent %v", ExitCode(err), sent)
	}
	small := &acliv1.CreateVmRequest{Name: "v"}
	if err := checkRequestSize(context.Background(), "/acli.v1.VmService/CreateVm", small, nil, nil, invoke); err != nil || !sent {
		t.Fatalf("a small request: %v, sent %v", err, sent)
	}
}
