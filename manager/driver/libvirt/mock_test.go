package libvirt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/libvirttest"
)

// libvirt RPC procedure numbers (remote_protocol.x); go-libvirt keeps its own internal.
const (
	procDomainDestroyFlags          = 234
	procDomainShutdownFlags         = 258
	procDomainMigratePerform3Params = 305
	procDomainDefineXMLFlags        = 350
)

// recorder keeps every byte the client sends, to decode the requests afterwards.
type recorder struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.buf.Write(b)
	r.mu.Unlock()
	return r.Conn.Write(b)
}

type request struct {
	proc uint32
	body []byte
}

// requests splits the recorded stream into libvirt RPC packets: a length word that counts
// itself, a 24-byte header (program, version, procedure, type, serial, status), the body.
func (r *recorder) requests(t *testing.T) []request {
	r.mu.Lock()
	b := append([]byte(nil), r.buf.Bytes()...)
	r.mu.Unlock()
	var out []request
	for len(b) >= 28 {
		n := binary.BigEndian.Uint32(b)
		if n < 28 || int(n) > len(b) {
			t.Fatalf("malformed packet length %d with %d bytes left", n, len(b))
		}
		out = append(out, request{proc: binary.BigEndian.Uint32(b[12:16]), body: b[28:n]})
		b = b[n:]
	}
	return out
}

func (r *recorder) last(t *testing.T, proc uint32) *xdrReader {
	t.Helper()
	reqs := r.requests(t)
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].proc == proc {
			return &xdrReader{t: t, b: reqs[i].body}
		}
	}
	t.Fatalf("no request for procedure %d among %d sent", proc, len(reqs))
	return nil
}

// xdrReader decodes the few XDR shapes the requests use.
type xdrReader struct {
	t *testing.T
	b []byte
}

func (x *xdrReader) uint32() uint32 {
	if len(x.b) < 4 {
		x.t.Fatalf("short XDR body")
	}
	v := binary.BigEndian.Uint32(x.b)
	x.b = x.b[4:]
	return v
}

func (x *xdrReader) uint64() uint64 { return uint64(x.uint32())<<32 | uint64(x.uint32()) }

func (x *xdrReader) opaque(n int) []byte {
	padded := (n + 3) &^ 3
	if len(x.b) < padded {
		x.t.Fatalf("short XDR body")
	}
	v := x.b[:n]
	x.b = x.b[padded:]
	return v
}

func (x *xdrReader) string() string { return string(x.opaque(int(x.uint32()))) }

func (x *xdrReader) domain() string {
	name := x.string()
	x.opaque(16) // uuid
	x.uint32()   // id
	return name
}

func mockConn(t *testing.T) (*Conn, *recorder) {
	t.Helper()
	m := libvirttest.New()
	rec := &recorder{}
	u, _ := ParseURI("qemu+tcp://mock/system")
	d := &dialer{dial: func() (net.Conn, error) {
		c, err := m.Dial()
		rec.Conn = c
		return rec, err
	}}
	l := golibvirt.NewWithDialer(d)
	if err := l.ConnectToURI(golibvirt.ConnectURI(u.remoteName())); err != nil {
		t.Fatal(err)
	}
	c := &Conn{uri: u, l: l, d: d, timeout: DialOptions{}.callTimeout()}
	t.Cleanup(func() { c.Close() })
	return c, rec
}

func TestMockDefineSendsGeneratedXML(t *testing.T) {
	c, rec := mockConn(t)
	spec := DomainSpec{Name: "test", UUID: "dc229f87-d4de-4719-8cfd-2e21c6105b01", VCPUs: 1, MemoryMiB: 64}
	if _, err := c.Define(spec); err != nil {
		t.Fatal(err)
	}
	x := rec.last(t, procDomainDefineXMLFlags)
	got, err := ParseDomainXML([]byte(x.string()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "test" || got.UUID != spec.UUID || got.MemoryMiB != 64 {
		t.Errorf("defined %+v", got)
	}
	if f := x.uint32(); f != uint32(golibvirt.DomainDefineValidate) {
		t.Errorf("define flags %d, want validate", f)
	}
}

func TestMockPowerOpsUseHardAndACPIFlags(t *testing.T) {
	c, rec := mockConn(t)
	if err := c.Destroy("test"); err != nil {
		t.Fatal(err)
	}
	x := rec.last(t, procDomainDestroyFlags)
	if name, f := x.domain(), x.uint32(); name != "test" || f != 0 {
		t.Errorf("destroy %q flags %d", name, f)
	}
	// The mock's domain reports running forever, so the ACPI request must time out.
	ctx := context.Background()
	err := c.Shutdown(ctx, "test", 150*time.Millisecond)
	if err == nil || !errors.Is(err, ErrShutdownTimeout) {
		t.Fatalf("shutdown: %v, want ErrShutdownTimeout", err)
	}
	x = rec.last(t, procDomainShutdownFlags)
	if name, f := x.domain(), x.uint32(); name != "test" || f != uint32(golibvirt.DomainShutdownAcpiPowerBtn) {
		t.Errorf("shutdown %q flags %d", name, f)
	}
}

func TestMockMigrateSendsP2PFlagsAndBandwidth(t *testing.T) {
	c, rec := mockConn(t)
	dest := "qemu+tcp://127.0.0.3/system"
	// A long poll interval: the mock does not answer job statistics.
	_, err := c.Migrate(context.Background(), "test", MigrateOptions{DestURI: dest, BandwidthMbps: 100, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	x := rec.last(t, procDomainMigratePerform3Params)
	if name := x.domain(); name != "test" {
		t.Errorf("migrated %q", name)
	}
	if present := x.uint32(); present != 1 {
		t.Fatalf("destination URI missing")
	}
	if got := x.string(); got != dest {
		t.Errorf("destination %q", got)
	}
	params := map[string]uint64{}
	for n := x.uint32(); n > 0; n-- {
		field := x.string()
		if typ := x.uint32(); typ != 4 { // VIR_TYPED_PARAM_ULLONG
			t.Fatalf("param %s has type %d", field, typ)
		}
		params[field] = x.uint64()
	}
	if params["bandwidth"] != 12 || len(params) != 1 {
		t.Errorf("params %v, want bandwidth=12 MiB/s for 100 Mb/s", params)
	}
	x.opaque(int(x.uint32())) // cookie
	want := golibvirt.MigrateLive | golibvirt.MigratePeer2peer | golibvirt.MigratePersistDest | golibvirt.MigrateUndefineSource
	if f := x.uint32(); f != uint32(want) {
		t.Errorf("migrate flags %#x, want %#x", f, want)
	}
}

func TestMockMigrateRejectsBadDestination(t *testing.T) {
	c, _ := mockConn(t)
	_, err := c.Migrate(context.Background(), "test", MigrateOptions{DestURI: "qemu+tcpp://h/system"})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(`did you mean "tcp"`)) {
		t.Errorf("bad destination: %v", err)
	}
}
