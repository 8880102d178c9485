package libvirt

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// libvirt RPC procedures the fake daemon answers (remote_protocol.x).
const (
	procConnectOpen               = 1
	procConnectClose              = 2
	procNodeGetInfo               = 6
	procConnectGetCapabilities    = 7
	procDomainLookupByName        = 23
	procDomainLookupByUUID        = 24
	procConnectGetHostname        = 59
	procAuthList                  = 66
	procDomainIsPersistent        = 151
	procConnectGetLibVersion      = 157
	procConnectListAllDomains     = 273
	procConnectListAllNodeDevices = 285
	procDomainCreateWithFlags     = 196
	procDomainGetState            = 212
	procDomainUndefineFlags       = 231
	procEventCallbackRegisterAny  = 316
	procEventCallbackDeregistrAny = 317
)

const remoteProgram = 0x20008086

// fakeDaemon speaks enough of libvirt's RPC protocol over TCP to be joined as a host and
// to define, start, destroy and undefine one domain (every lookup finds it, shut off). A
// procedure set with freeze is taken and never answered, like a call whose libvirtd
// worker waits for ever on a stalled guest; the connection stays open.
type fakeDaemon struct {
	t        *testing.T
	addr     string
	hostUUID string
	domName  string
	domUUID  uuid.UUID

	mu      sync.Mutex
	frozen  map[uint32]bool
	held    map[uint32]bool
	pending []func() // the held calls' answers
	calls   map[uint32]int
}

func newFakeDaemon(t *testing.T, addr string) *fakeDaemon {
	t.Helper()
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDaemon{t: t, addr: l.Addr().String(), hostUUID: uuid.NewString(), domName: "web",
		domUUID: uuid.New(), frozen: map[uint32]bool{}, held: map[uint32]bool{}, calls: map[uint32]int{}}
	var conns []net.Conn
	var mu sync.Mutex
	serve(t, l, func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		f.handle(c)
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close() // the frozen calls' connections, which handle never ends
		}
	})
	return f
}

// URI reaches the fake over TCP.
func (f *fakeDaemon) URI() string { return "qemu+tcp://" + f.addr + "/system" }

// freeze makes the daemon take calls of these procedures and never answer them.
func (f *fakeDaemon) freeze(procs ...uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range procs {
		f.frozen[p] = true
	}
}

// hold makes the daemon take calls of proc and answer them only on release.
func (f *fakeDaemon) hold(proc uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held[proc] = true
}

// release answers the held calls and holds no more.
func (f *fakeDaemon) release() {
	f.mu.Lock()
	pending := f.pending
	f.pending, f.held = nil, map[uint32]bool{}
	f.mu.Unlock()
	for _, answer := range pending {
		answer()
	}
}

// called is how many calls of proc the daemon took.
func (f *fakeDaemon) called(proc uint32) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[proc]
}

func (f *fakeDaemon) handle(c net.Conn) {
	var wmu sync.Mutex
	for {
		var hdr [28]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		if n < 28 {
			return
		}
		body := make([]byte, n-28)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		proc, serial := binary.BigEndian.Uint32(hdr[12:16]), binary.BigEndian.Uint32(hdr[20:24])
		reply, ok := f.answer(proc)
		if !ok {
			f.t.Errorf("fake libvirtd: procedure %d not expected", proc)
			return
		}
		var out bytes.Buffer
		for _, v := range []uint32{uint32(28 + len(reply)), remoteProgram, 1, proc, 1 /* reply */, serial, 0 /* ok */} {
			binary.Write(&out, binary.BigEndian, v)
		}
		out.Write(reply)
		send := func() {
			wmu.Lock()
			c.Write(out.Bytes())
			wmu.Unlock()
		}
		f.mu.Lock()
		f.calls[proc]++
		frozen, held := f.frozen[proc], f.held[proc]
		if held {
			f.pending = append(f.pending, send)
		}
		f.mu.Unlock()
		if !frozen && !held {
			send()
		}
	}
}

// answer is the XDR body of a successful reply to proc.
func (f *fakeDaemon) answer(proc uint32) ([]byte, bool) {
	var b xdrWriter
	switch proc {
	case procConnectOpen, procConnectClose, procDomainUndefineFlags, procDomainDestroyFlags:
	case procAuthList:
		b.uint32(0) // no authentication
	case procConnectGetLibVersion:
		b.uint64(9000000)
	case procConnectGetHostname:
		b.string("fake")
	case procNodeGetInfo:
		for range 32 {
			b.uint32(0) // model: char[32], one XDR int each
		}
		b.uint64(1 << 20) // KiB
		for _, v := range []uint32{2, 1000, 1, 1, 2, 1} {
			b.uint32(v)
		}
	case procConnectGetCapabilities:
		b.string("<capabilities><host><uuid>" + f.hostUUID + "</uuid></host></capabilities>")
	case procDomainLookupByName, procDomainLookupByUUID, procDomainDefineXMLFlags, procDomainCreateWithFlags:
		f.domain(&b)
	case procConnectListAllDomains:
		b.uint32(1)
		f.domain(&b)
		b.uint32(1)
	case procDomainGetState:
		b.uint32(5) // shut off
		b.uint32(0)
	case procDomainIsPersistent:
		b.uint32(1)
	case procEventCallbackRegisterAny:
		b.uint32(1)
	case procConnectListAllNodeDevices:
		b.uint32(0) // none
		b.uint32(0)
	case procEventCallbackDeregistrAny:
	default:
		return nil, false
	}
	return b.Bytes(), true
}

// domain writes the one domain there is.
func (f *fakeDaemon) domain(b *xdrWriter) {
	b.string(f.domName)
	b.Write(f.domUUID[:])
	b.uint32(0xffffffff) // id -1: not running
}

type xdrWriter struct{ bytes.Buffer }

func (w *xdrWriter) uint32(v uint32) { binary.Write(w, binary.BigEndian, v) }
func (w *xdrWriter) uint64(v uint64) { binary.Write(w, binary.BigEndian, v) }
func (w *xdrWriter) string(s string) {
	w.uint32(uint32(len(s)))
	w.WriteString(s)
	w.Write(make([]byte, (4-len(s)%4)%4))
}
