package limits_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/managertest"
)

var bg = context.Background()

// rawCodec sends []byte as they are, to put any bytes on the wire.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

// A request clusterd cannot accept is bad input (InvalidArgument, acli's
// exit 2) naming the problem, never Internal nor a refusal, and changes
// nothing.
func TestBadRequestsAreInvalidArgument(t *testing.T) {
	conn, _ := managertest.Start(t, managertest.Options{Hosts: 3})
	vms := acliv1.NewVmServiceClient(conn)
	big := func(n int) *acliv1.CreateVmRequest {
		return &acliv1.CreateVmRequest{Name: "big", MemoryBytes: 1 << 30, Description: strings.Repeat("d", n)}
	}
	call := func(req any) error {
		var task acliv1.Task
		return conn.Invoke(bg, "/acli.v1.VmService/CreateVm", req, &task, grpc.ForceCodecV2(rawCodec{}))
	}
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		err  error
		want string // regexp of the message
	}{
		{"request over the size limit", call(marshal(big(2 << 20))), `^the request is 2097\d{3} bytes; clusterd accepts at most 1048576$`},
		{"not protobuf", call([]byte{0xff, 0xff, 0xff, 0xff}), `^the request is not a valid acli\.v1\.CreateVmRequest: proto:.cannot parse invalid wire-format data$`},
		{"invalid UTF-8 in a string", call(append([]byte{0x0a, 0x02}, 0xc3, 0x28)), `^the request is not a valid acli\.v1\.CreateVmRequest: .*UTF-8`},
	}
	for _, c := range cases {
		st := status.Convert(c.err)
		if st.Code() != codes.InvalidArgument || !regexp.MustCompile(c.want).MatchString(st.Message()) {
			t.Errorf("%s: %v %q, want InvalidArgument matching %s", c.name, st.Code(), st.Message(), c.want)
		}
		if code := client.ExitCode(c.err); code != client.ExitUsage {
			t.Errorf("%s: acli exit %d, want %d", c.name, code, client.ExitUsage)
		}
	}
	list, err := vms.ListVms(bg, &acliv1.ListVmsRequest{})
	if err != nil || len(list.GetVms()) != 0 {
		t.Fatalf("refused requests changed the model: %v %v", list.GetVms(), err)
	}
	// Within every limit, the same call works.
	if err := call(marshal(big(1000))); err != nil {
		t.Fatalf("a request within the limits: %v", err)
	}
}
