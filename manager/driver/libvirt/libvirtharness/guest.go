package libvirtharness

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// Guest is the test guest image built from testdata/guest: a bootable disk
// (syslinux, Debian's kernel, a busybox initramfs) that prints "HB n ..."
// on its serial console and writes "REC seq=n ..." to sector n of its data
// disk every 100 ms, fsync'd.
type Guest struct {
	Raw   string // raw disk image
	Qcow2 string // the same image as qcow2
}

// GuestCacheDir is where built guests are kept, one directory per recipe
// hash, so every test binary and CI step reuses one build.
func GuestCacheDir() string {
	if d := os.Getenv("ACLI_GUEST_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "acli", "guest")
	}
	return filepath.Join(os.TempDir(), "acli-guest")
}

// recipeDir is testdata/guest at the root of the module.
func recipeDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "testdata", "guest")
}

// BuildGuest returns the cached guest for the current recipe, building it
// first when missing. Concurrent callers (other test binaries) wait on a
// lock rather than build twice. The build downloads two Debian packages.
func BuildGuest() (Guest, error) {
	dir := recipeDir()
	h := sha256.New()
	for _, f := range []string{"build.sh", "init"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return Guest{}, fmt.Errorf("guest recipe: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	out := filepath.Join(GuestCacheDir(), hex.EncodeToString(h.Sum(nil))[:16])
	g := Guest{Raw: filepath.Join(out, "disk.raw"), Qcow2: filepath.Join(out, "disk.qcow2")}
	if err := os.MkdirAll(GuestCacheDir(), 0o755); err != nil {
		return Guest{}, err
	}
	lock, err := os.OpenFile(out+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Guest{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return Guest{}, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(g.Qcow2); err == nil {
		return g, nil
	}
	for _, b := range []string{"apt-get", "dpkg-deb", "mkfs.vfat", "mcopy", "syslinux", "qemu-img"} {
		if _, err := lookPath(b); err != nil {
			return Guest{}, fmt.Errorf("guest build needs %s (.ci/run installs it)", b)
		}
	}
	tmp := out + ".tmp"
	os.RemoveAll(tmp)
	cmd := exec.Command(filepath.Join(dir, "build.sh"), tmp)
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return Guest{}, fmt.Errorf("guest build: %v: %s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return Guest{}, err
	}
	return g, nil
}

// GuestT is BuildGuest for tests: it skips when the guest cannot be built
// here, and fails under CI as root, where .ci/run provides what it needs.
func GuestT(t testing.TB) Guest {
	t.Helper()
	g, err := BuildGuest()
	if err == nil {
		return g
	}
	if os.Getenv("CI") != "" && os.Geteuid() == 0 {
		t.Fatalf("test guest: %v", err)
	}
	t.Skipf("test guest unavailable: %v", err)
	return Guest{}
}
