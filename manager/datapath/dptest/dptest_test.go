package dptest

import (
	"net"
	"testing"
)

// A /24 whose data services portal is held (a clusterd outliving its test
// binary) is not handed out: every fixed portal is checked, not only the
// first redirector's and CVM's.
func TestBusyPortalSeesEachFixedPortal(t *testing.T) {
	const prefix = "127.50.3."
	if busy := busyPortal(prefix); busy != "" {
		t.Fatalf("%s held before the test", busy)
	}
	for _, addr := range []string{prefix + "20:3260", prefix + "13:3205", prefix + "2:3261"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		busy := busyPortal(prefix)
		l.Close()
		if busy != addr {
			t.Errorf("with %s held: busy portal %q", addr, busy)
		}
	}
}
