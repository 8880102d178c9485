// Package dptest gives data path tests addresses of their own: a /24 of
// 127.46.0.0/16 per test binary, held by an flock, so two runs at once
// (two developers, two packages) never bind the same redirector or CVM
// portal.
package dptest

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Missing skips a test whose tools are absent, unless
// ACLI_REQUIRE_DATAPATH=1 (CI sets it after installing them): there a skip
// would hide a broken set-up.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("ACLI_REQUIRE_DATAPATH") == "1" {
		t.Fatal(why + " (ACLI_REQUIRE_DATAPATH=1)")
	}
	t.Skip(why)
}

// QEMUISCSI is QEMU's iSCSI block driver (qemu-block-extra).
const QEMUISCSI = "/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so"

// LabNet is the /24 acli-lab uses; tests leave it alone.
const LabNet = "127.46.16."

const lockDir = "/tmp/acli-datapath"

var claim struct {
	sync.Once
	prefix string
	err    error
}

// Net is this process's /24 as a prefix ("127.46.N."): redirectors .1-.9,
// CVMs .11-.19, the data services IP .20. The same for every call; the
// claim lasts as long as the process.
func Net() (string, error) {
	claim.Do(func() { claim.prefix, claim.err = claimNet() })
	return claim.prefix, claim.err
}

// MustNet is Net for package-level test variables.
func MustNet() string {
	p, err := Net()
	if err != nil {
		panic(err)
	}
	return p
}

func claimNet() (string, error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return "", err
	}
	for n := 1; n < 255; n++ {
		prefix := "127.46." + strconv.Itoa(n) + "."
		if prefix == LabNet {
			continue
		}
		f, err := os.OpenFile(filepath.Join(lockDir, prefix+"lock"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return "", err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		// A process left over from an earlier run (a tgtd, or a clusterd
		// whose test binary was killed, still serving the data services IP)
		// may hold a portal after the flock is gone.
		if busy := busyPortal(prefix); busy == "" {
			return prefix, nil // f stays open: the flock lasts until exit
		}
		f.Close()
	}
	return "", errors.New("no free /24 in 127.46.0.0/16 for a data path test")
}

// portals are the fixed ports a /24's tests listen on: redirectors,
// CVM targets and the data services IP.
func portals(prefix string) []string {
	var out []string
	for i := 1; i <= 9; i++ {
		out = append(out, prefix+strconv.Itoa(i)+":3261")
	}
	for i := 11; i <= 19; i++ {
		out = append(out, prefix+strconv.Itoa(i)+":3261", prefix+strconv.Itoa(i)+":3205")
	}
	return append(out, prefix+"20:3260")
}

// busyPortal returns the first of prefix's portals something listens on.
func busyPortal(prefix string) string {
	for _, addr := range portals(prefix) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return addr
		}
		l.Close()
	}
	return ""
}

// Zombie reports whether pid has exited (gone, or a zombie not yet reaped).
func Zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z")
}
