package volume

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const gib = int64(1) << 30

// image10G writes a 10 GiB sparse raw image holding 20 MB of random data in
// four 5 MB extents spread over it, and returns its path and the extents.
func image10G(t testing.TB, dir string) (string, map[int64][]byte) {
	t.Helper()
	p := filepath.Join(dir, "img.raw")
	if err := Create(p, 10*gib); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ext := map[int64][]byte{}
	for i := int64(0); i < 4; i++ {
		b := make([]byte, 5<<20)
		rand.Read(b)
		off := i * (10*gib/4 - 5<<20)
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		ext[off] = b
	}
	return p, ext
}

func TestCreateIsSparseAndExclusive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.raw")
	if err := Create(p, 50*gib); err != nil {
		t.Fatal(err)
	}
	size, alloc, err := Usage(p)
	if err != nil || size != 50*gib || alloc > 1<<20 {
		t.Fatalf("Usage = %d, %d, %v; want 50 GiB with nothing allocated", size, alloc, err)
	}
	if err := Create(p, gib); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second Create = %v, want ErrExist", err)
	}
	if err := Create(filepath.Join(t.TempDir(), "z"), 0); err == nil {
		t.Fatal("Create of size 0 succeeded")
	}
}

func TestCloneCopiesOnlyData(t *testing.T) {
	dir := t.TempDir()
	src, ext := image10G(t, dir)
	dst := filepath.Join(dir, "clone.raw")
	if err := Clone(src, dst, 12*gib); err != nil {
		t.Fatal(err)
	}
	size, alloc, err := Usage(dst)
	if err != nil {
		t.Fatal(err)
	}
	if size != 12*gib {
		t.Errorf("clone size %d, want 12 GiB (grown)", size)
	}
	if alloc < 20<<20 || alloc > 24<<20 {
		t.Errorf("clone occupies %d bytes, want about 20 MB", alloc)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off, want := range ext {
		got := make([]byte, len(want))
		if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("extent at %d differs (%v)", off, err)
		}
	}
	// Writing to the clone leaves the source alone.
	w, _ := os.OpenFile(dst, os.O_RDWR, 0)
	w.WriteAt([]byte("clone"), 0)
	w.Close()
	s := make([]byte, 5)
	r, _ := os.Open(src)
	r.ReadAt(s, 0)
	r.Close()
	if string(s) == "clone" {
		t.Fatal("write to the clone reached the source")
	}
	if err := Clone(src, dst, 0); !errors.Is(err, os.ErrExist) {
		t.Fatalf("clone onto an existing volume = %v, want ErrExist", err)
	}
}

func TestResizeGrowsOnly(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.raw")
	if err := Create(p, gib); err != nil {
		t.Fatal(err)
	}
	if err := Resize(p, 2*gib); err != nil {
		t.Fatal(err)
	}
	err := Resize(p, gib)
	if err == nil || !strings.Contains(err.Error(), "cannot shrink") {
		t.Fatalf("shrink = %v, want refusal", err)
	}
	if size, _, _ := Usage(p); size != 2*gib {
		t.Fatalf("size %d after refused shrink, want 2 GiB", size)
	}
	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := Remove(p); err != nil {
		t.Fatalf("second Remove = %v, want nil", err)
	}
}

// serve serves dir over HTTP on the storage tests' loopback range.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.45.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return s.URL
}

func noLeftovers(t *testing.T, dir string, keep ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.Contains(strings.Join(keep, "\x00"), e.Name()) {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestImportRawOverHTTPStaysSparse(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	p := filepath.Join(srcDir, "img.raw")
	Create(p, 64<<20)
	f, _ := os.OpenFile(p, os.O_RDWR, 0)
	f.WriteAt([]byte("bootsector"), 0)
	f.Close()
	url := serve(t, http.FileServer(http.Dir(srcDir)))
	var last, total int64
	dst := filepath.Join(dstDir, "img")
	res, err := Import(context.Background(), url+"/img.raw", dst, ImportOptions{Progress: func(d, tot int64) { last, total = d, tot }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != 64<<20 || res.Fetched != 64<<20 || res.SourceType != "raw" || last != 64<<20 || total != 64<<20 {
		t.Fatalf("import = %+v, progress %d/%d", res, last, total)
	}
	if _, alloc, _ := Usage(dst); alloc > 1<<20 {
		t.Fatalf("imported image occupies %d bytes, want it sparse", alloc)
	}
	b := make([]byte, 10)
	g, _ := os.Open(dst)
	g.ReadAt(b, 0)
	g.Close()
	if string(b) != "bootsector" {
		t.Fatalf("imported image starts %q", b)
	}
	noLeftovers(t, dstDir, "img")
}

func TestImportQcow2ConvertsToRaw(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (Debian package qemu-utils)")
	}
	dir, dstDir := t.TempDir(), t.TempDir()
	raw := filepath.Join(dir, "a.raw")
	Create(raw, 32<<20)
	f, _ := os.OpenFile(raw, os.O_RDWR, 0)
	f.WriteAt([]byte("hello qcow2"), 1<<20)
	f.Close()
	q := filepath.Join(dir, "a.qcow2")
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, q).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	dst := filepath.Join(dstDir, "a")
	res, err := Import(context.Background(), "file://"+q, dst, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.SourceType != "qcow2" || res.Size != 32<<20 {
		t.Fatalf("import = %+v, want qcow2 source, 32 MiB raw", res)
	}
	b := make([]byte, 11)
	g, _ := os.Open(dst)
	g.ReadAt(b, 1<<20)
	g.Close()
	if string(b) != "hello qcow2" {
		t.Fatalf("converted data %q", b)
	}
	noLeftovers(t, dstDir, "a")
}

func TestFailedImportLeavesNothing(t *testing.T) {
	srcDir := t.TempDir()
	os.WriteFile(filepath.Join(srcDir, "x.iso"), bytes.Repeat([]byte("iso!"), 1<<18), 0o644)
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cut":
			// Promises 1 MiB, sends 4 KiB, then drops the connection.
			w.Header().Set("Content-Length", "1048576")
			w.Write(make([]byte, 4096))
			panic(http.ErrAbortHandler)
		default:
			http.FileServer(http.Dir(srcDir)).ServeHTTP(w, r)
		}
	}))
	ctx := context.Background()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	for _, c := range []struct {
		name, src, sum, want string
		ctx                  context.Context
	}{
		{"404", url + "/missing", "", "404 Not Found", ctx},
		{"cut", url + "/cut", "", "got 4096 of 1048576 bytes", ctx},
		{"checksum", url + "/x.iso", strings.Repeat("0", 64), "sha256 is", ctx},
		{"canceled", url + "/x.iso", "", "context canceled", canceled},
		{"scheme", "ftp://127.45.0.1/x", "", "scheme must be http, https or file", ctx},
		{"no file", "file:///nonexistent/x", "", "no such file", ctx},
	} {
		t.Run(c.name, func(t *testing.T) {
			dstDir := t.TempDir()
			_, err := Import(c.ctx, c.src, filepath.Join(dstDir, "img"), ImportOptions{SHA256: c.sum})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Import = %v, want an error containing %q", err, c.want)
			}
			noLeftovers(t, dstDir)
		})
	}
	dstDir := t.TempDir()
	res, err := Import(ctx, url+"/x.iso", filepath.Join(dstDir, "iso"), ImportOptions{})
	if err != nil || res.SourceType != "raw" || res.Size != 1<<20 {
		t.Fatalf("iso import = %+v, %v", res, err)
	}
	if _, err := Import(ctx, url+"/x.iso", filepath.Join(dstDir, "iso"), ImportOptions{}); !errors.Is(err, os.ErrExist) {
		t.Fatalf("import over an existing volume = %v, want ErrExist", err)
	}
}

// BenchmarkClone10GiB20MB: time and space of cloning a 10 GiB image that
// holds 20 MB (the same copy serves snapshots).
func BenchmarkClone10GiB20MB(b *testing.B) {
	dir := b.TempDir()
	src, _ := image10G(b, dir)
	var alloc int64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dst := filepath.Join(dir, "c")
		if err := Clone(src, dst, 0); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_, alloc, _ = Usage(dst)
		Remove(dst)
		b.StartTimer()
	}
	b.ReportMetric(float64(alloc)/(1<<20), "MiB-allocated")
}

// BenchmarkImportHTTP: import throughput of a 256 MiB raw image of random
// data from a loopback HTTP server.
func BenchmarkImportHTTP(b *testing.B) {
	srcDir := b.TempDir()
	data := make([]byte, 256<<20)
	rand.Read(data)
	os.WriteFile(filepath.Join(srcDir, "img"), data, 0o644)
	url := serve(b, http.FileServer(http.Dir(srcDir)))
	dst := filepath.Join(b.TempDir(), "img")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		os.Remove(dst)
		if _, err := Import(context.Background(), url+"/img", dst, ImportOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
