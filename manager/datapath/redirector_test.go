package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// loginPDU builds an initiator's first Login Request.
func loginPDU(itt uint32, keys ...string) []byte {
	var data []byte
	for _, k := range keys {
		data = append(append(data, k...), 0)
	}
	p := make([]byte, bhsLen+pad4(len(data)))
	p[0] = 0x40 | opLoginReq
	p[1] = 0x87 // T, CSG=operational, NSG=full feature
	p[5], p[6], p[7] = byte(len(data)>>16), byte(len(data)>>8), byte(len(data))
	copy(p[8:14], []byte{0x80, 1, 2, 3, 4, 5})
	binary.BigEndian.PutUint32(p[16:20], itt)
	binary.BigEndian.PutUint32(p[24:28], 7)
	copy(p[bhsLen:], data)
	return p
}

func roundTrip(t *testing.T, addr string, req []byte) (bhs []byte, keys map[string]string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	bhs, data, err := readPDU(c)
	if err != nil {
		t.Fatal(err)
	}
	return bhs, parseKeys(data)
}

// Every login is answered by a Login Response echoing the initiator's
// ISID, ITT and CmdSN, with the status Route decides: a temporary redirect
// (0x0101, which libiscsi follows) naming the portal, "not authorized"
// for a fenced initiator, "service unavailable" when no CVM can serve.
func TestRedirectorAnswers(t *testing.T) {
	var mu sync.Mutex
	var got []Login
	r, err := Listen(testNet+"1:0", func(l Login) (string, error) {
		mu.Lock()
		got = append(got, l)
		mu.Unlock()
		switch l.Target {
		case "iqn.x:fenced":
			return "", ErrFenced
		case "iqn.x:none":
			return "", errors.New("no CVM is up")
		}
		return testNet + "11:3261", nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	bhs, keys := roundTrip(t, r.Addr(), loginPDU(0x1234, "InitiatorName=iqn.i:a", "TargetName=iqn.x:d1", "SessionType=Normal"))
	if bhs[0] != opLoginResp || bhs[36] != 1 || bhs[37] != 1 {
		t.Fatalf("response opcode %#x status %#x/%#x, want 0x23 and 0x0101", bhs[0], bhs[36], bhs[37])
	}
	if keys["TargetAddress"] != testNet+"11:3261,1" {
		t.Fatalf("TargetAddress %q", keys["TargetAddress"])
	}
	if !bytes.Equal(bhs[8:14], []byte{0x80, 1, 2, 3, 4, 5}) || binary.BigEndian.Uint32(bhs[16:20]) != 0x1234 {
		t.Fatalf("ISID or ITT not echoed: % x", bhs[:20])
	}
	if binary.BigEndian.Uint32(bhs[28:32]) != 7 || binary.BigEndian.Uint32(bhs[32:36]) != 7 {
		t.Fatalf("ExpCmdSN/MaxCmdSN % x, want the request's CmdSN", bhs[28:36])
	}
	mu.Lock()
	first := got
	mu.Unlock()
	if len(first) != 1 || first[0].Initiator != "iqn.i:a" || first[0].Target != "iqn.x:d1" {
		t.Fatalf("route saw %+v", first)
	}

	bhs, keys = roundTrip(t, r.Addr(), loginPDU(1, "InitiatorName=iqn.i:a", "TargetName=iqn.x:fenced"))
	if bhs[36] != 2 || bhs[37] != 2 || len(keys) != 0 {
		t.Fatalf("fenced login answered %#x/%#x %v, want 0x0202", bhs[36], bhs[37], keys)
	}
	bhs, _ = roundTrip(t, r.Addr(), loginPDU(1, "InitiatorName=iqn.i:a", "TargetName=iqn.x:none"))
	if bhs[36] != 3 || bhs[37] != 1 {
		t.Fatalf("unroutable login answered %#x/%#x, want 0x0301", bhs[36], bhs[37])
	}
}

// Something that is not a login, or a data segment over the limit, gets
// the connection closed without an answer.
func TestRedirectorClosesOnGarbage(t *testing.T) {
	r, err := Listen(testNet+"1:0", func(Login) (string, error) { return "127.0.0.1:1", nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for name, req := range map[string][]byte{
		"scsi command": append([]byte{0x01}, make([]byte, 47)...),
		"huge data":    append([]byte{0x43, 0, 0, 0, 0, 0x10, 0, 0}, make([]byte, 40)...),
	} {
		c, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(req)
		if n, err := io.ReadAll(c); err != nil || len(n) != 0 {
			t.Errorf("%s: read %d bytes, %v; want a bare close", name, len(n), err)
		}
		c.Close()
	}
}

func TestParseNexus(t *testing.T) {
	txt := `Target 1: iqn.2010-06.com.nutanix:vdisk-a
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 4
            Initiator: iqn.2010-06.com.nutanix:h1:vm-x alias: none
            Connection: 0
                IP Address: 127.46.3.1
    LUN information:
        LUN: 0
            Type: controller
    Account information:
    ACL information:
        ALL
Target 2: iqn.2010-06.com.nutanix:vdisk-b
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
    ACL information:
        iqn.2010-06.com.nutanix:h2:vm-x
`
	want := []Session{{Target: "iqn.2010-06.com.nutanix:vdisk-a", Initiator: "iqn.2010-06.com.nutanix:h1:vm-x", Addr: "127.46.3.1", TID: 1, SID: 4}}
	if got := parseNexus(txt); !slices.Equal(got, want) {
		t.Fatalf("parseNexus:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseConns(t *testing.T) {
	txt := `Session: 3
    Connection: 0
        Initiator: iqn.2008-11.org.linux-kvm:vm1
        IP Address: 127.46.14.1
Session: 5
    Connection: 1
        Initiator: iqn.i:b
        IP Address: 127.0.0.1
`
	got := parseConns(txt)
	want := []Session{{SID: 3, CID: 0, Initiator: "iqn.2008-11.org.linux-kvm:vm1", Addr: "127.46.14.1"}, {SID: 5, CID: 1, Initiator: "iqn.i:b", Addr: "127.0.0.1"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v", got)
	}
}

// BenchmarkRedirectorLogin: one login answered with a redirect, over a
// fresh loopback connection, as each QEMU (re)connect costs.
func BenchmarkRedirectorLogin(b *testing.B) {
	r, err := Listen(testNet+"1:0", func(Login) (string, error) { return testNet + "11:3261", nil }, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	req := loginPDU(1, "InitiatorName=iqn.i:a", "TargetName=iqn.x:d1", "SessionType=Normal")
	for b.Loop() {
		c, err := net.Dial("tcp", r.Addr())
		if err != nil {
			b.Fatal(err)
		}
		c.Write(req)
		bhs, _, err := readPDU(c)
		if err != nil || bhs[36] != 1 {
			b.Fatalf("answer %v %v", bhs, err)
		}
		c.Close()
	}
}
