package limits_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/limits"
	"github.com/acli-dev/acli/manager/managertest"
)

var bg = context.Background()

func TestCheckNamesTheFieldAndTheCap(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		req  proto.Message
		want string // "" when the request fits
	}{
		{&acliv1.CreateVmRequest{Name: long(256), Description: long(4096)}, ""},
		{&acliv1.CreateVmRequest{Name: "web01", Description: long(4097)}, "description is 4097 bytes; at most 4096 are allowed"},
		{&acliv1.CreateVmRequest{Name: long(257)}, "name is 257 bytes; at most 256 are allowed"},
		{&acliv1.UpdateHostRequest{Host: "h1", Reason: long(1025)}, "reason is 1025 bytes; at most 1024 are allowed"},
		{&acliv1.CreateNetworkRequest{Name: "n", VswitchName: long(300)}, "vswitch_name is 300 bytes; at most 256 are allowed"},
		{&acliv1.CreateVgDiskRequest{VolumeGroup: "vg", Container: long(3 << 20)}, "container is 3145728 bytes; at most 256 are allowed"},
		{&acliv1.SetAffinityRequest{Vm: "web01", Hosts: []string{"h1", long(257)}}, "hosts[1] is 257 bytes; at most 256 are allowed"},
		{&acliv1.UpdateVmGroupRequest{Group: "g", AddVms: make([]string, limits.MaxListItems+1)}, "add_vms has 10001 items; at most 10000 are allowed"},
	}
	for _, c := range cases {
		err := limits.Check(c.req)
		if c.want == "" {
			if err != nil {
				t.Errorf("%T: %v, want it accepted", c.req, err)
			}
			continue
		}
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || st.Message() != c.want {
			t.Errorf("%T: %v %q, want InvalidArgument %q", c.req, st.Code(), st.Message(), c.want)
			continue
		}
		field := strings.Fields(c.want)[0]
		if br := badRequest(st); br == nil || br.GetFieldViolations()[0].GetField() != field {
			t.Errorf("%T: details %v lack the field %s", c.req, st.Details(), field)
		}
	}
}

func badRequest(st *status.Status) *errdetails.BadRequest {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			return br
		}
	}
	return nil
}

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
		{"field over its cap", call(marshal(big(5000))), `^description is 5000 bytes; at most 4096 are allowed$`},
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
	// A stream's request is checked the same way.
	events := acliv1.NewEventServiceClient(conn)
	stream, err := events.WatchEvents(bg, &acliv1.WatchEventsRequest{Type: strings.Repeat("t", 300)})
	if err == nil {
		_, err = stream.Recv()
	}
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != "type is 300 bytes; at most 256 are allowed" {
		t.Errorf("watch with a long type: %v %q", st.Code(), st.Message())
	}
	list, err := vms.ListVms(bg, &acliv1.ListVmsRequest{})
	if err != nil || len(list.GetVms()) != 0 {
		t.Fatalf("refused requests changed the model: %v %v", list.GetVms(), err)
	}
	// Within every limit, the same call works.
	if err := call(marshal(big(4096))); err != nil {
		t.Fatalf("a request within the limits: %v", err)
	}
}

// watch opens an event stream and waits until the server has admitted it
// (the replayed event arrives) or refused it.
func watch(ctx context.Context, conn *grpc.ClientConn, since uint64) error {
	stream, err := acliv1.NewEventServiceClient(conn).WatchEvents(ctx, &acliv1.WatchEventsRequest{SinceSeq: since})
	if err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

// Streams are capped per connection and in total, with an error naming the
// cap; a closed stream frees its place.
func TestStreamCaps(t *testing.T) {
	h := managertest.New(t, managertest.Options{Hosts: 3, Limits: limits.Config{StreamsPerConn: 3, StreamsTotal: 5}})
	vms := acliv1.NewVmServiceClient(h.Conn)
	// Each stream replays the newest event (since_seq is its predecessor),
	// which tells the server admitted it.
	var since uint64
	for i := 0; since == 0; i++ {
		if _, err := vms.CreateVm(bg, &acliv1.CreateVmRequest{Name: fmt.Sprint("v", i), MemoryBytes: 1 << 30}); err != nil {
			t.Fatal(err)
		}
		evs, err := acliv1.NewEventServiceClient(h.Conn).ListEvents(bg, &acliv1.ListEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.GetEvents() {
			since = max(since, e.GetSeq()-1)
		}
	}
	other, err := h.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	var cancels []context.CancelFunc
	open := func(conn *grpc.ClientConn) error {
		sctx, scancel := context.WithCancel(ctx)
		cancels = append(cancels, scancel)
		return watch(sctx, conn, since)
	}
	for i := 0; i < 3; i++ {
		if err := open(h.Conn); err != nil {
			t.Fatalf("stream %d: %v", i+1, err)
		}
	}
	wantRefused(t, open(h.Conn), "this connection already has 3 streams open (event and task watches), the most one connection may; close one first")
	for i := 0; i < 2; i++ {
		if err := open(other); err != nil {
			t.Fatalf("stream %d on the second connection: %v", i+1, err)
		}
	}
	wantRefused(t, open(other), "clusterd already serves 5 streams (event and task watches), the most it serves at once; retry later")
	cancels[0]() // one stream of the first connection ends
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := open(other)
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("after a stream closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range cancels {
		c()
	}
}

func wantRefused(t *testing.T, err error, msg string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || st.Message() != msg {
		t.Fatalf("got %v %q, want ResourceExhausted %q", st.Code(), st.Message(), msg)
	}
}

// docs/limits.md states every cap as the code enforces it.
func TestLimitsAreDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/limits.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	rows := map[string]int{
		"request":                      limits.MaxRequestBytes,
		"message read by gRPC":         limits.MaxReadBytes,
		"items of a list":              limits.MaxListItems,
		"any other string":             limits.DefaultStringBytes,
		"streams per connection":       limits.DefaultStreamsPerConn,
		"streams in total":             limits.DefaultStreamsTotal,
		"calls at once per connection": limits.MaxConcurrentStreams,
		"calls at once per user":       limits.DefaultCallsPerPrincipal,
		"calls waiting per user":       limits.DefaultQueuedPerPrincipal,
		"streams per user":             limits.DefaultStreamsPerPrincipal,
	}
	for f, n := range limits.Fields {
		rows["`"+f+"`"] = n
	}
	for name, n := range rows {
		if !regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(name) + ` +\| ` + fmt.Sprint(n) + ` `).MatchString(doc) {
			t.Errorf("docs/limits.md lacks the row | %s | %d ...", name, n)
		}
	}
}
