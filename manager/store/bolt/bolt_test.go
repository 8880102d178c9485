package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acli-dev/acli/manager/store"
	"github.com/acli-dev/acli/manager/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsDataAndRevision(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rev, _ := store.Put(ctx, s, "/vms/1", []byte("web01"))
	s.Close()

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kv, err := s.Get(ctx, "/vms/1")
	if err != nil || string(kv.Value) != "web01" || kv.ModRev != rev {
		t.Fatalf("after reopen: %+v, %v", kv, err)
	}
	if r, _ := s.Revision(ctx); r != rev {
		t.Fatalf("revision after reopen %d, want %d", r, rev)
	}
}

func TestLockedFile(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	var oe *OpenError
	if !errors.As(err, &oe) || oe.Reason != "locked" {
		t.Fatalf("second open = %v, want locked OpenError", err)
	}
	if !strings.Contains(err.Error(), "locked by another process") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("message not a clear one-liner: %q", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("lock timeout not honoured")
	}
}

func TestCorruptFileLeftUntouched(t *testing.T) {
	cases := map[string]func(t *testing.T, path string){
		"garbage": func(t *testing.T, path string) {
			os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1000), 0o600)
		},
		"damaged-page": func(t *testing.T, path string) {
			// A valid file whose data pages are overwritten after the meta pages.
			s, err := Open(filepath.Dir(path), Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 200; i++ {
				store.Put(context.Background(), s, fmt.Sprintf("/vms/%04d", i), bytes.Repeat([]byte("x"), 100))
			}
			s.Close()
			b, _ := os.ReadFile(path)
			for i := 2 * 4096; i < len(b); i++ {
				b[i] = 0xA5
			}
			os.WriteFile(path, b, 0o600)
		},
		// An empty or truncated file is a lost cluster, never a new one.
		"empty": func(t *testing.T, path string) {
			os.WriteFile(path, nil, 0o600)
		},
		"truncated-to-1-byte":  truncated(1),
		"truncated-in-meta":    truncated(4096 + 100),
		"truncated-after-meta": truncated(2 * 4096),
		"truncated-to-half":    truncated(-2),
		"damaged-meta": func(t *testing.T, path string) {
			s, err := Open(filepath.Dir(path), Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			b, _ := os.ReadFile(path)
			for i := 0; i < 2*4096; i += 7 {
				b[i] ^= 0xFF
			}
			os.WriteFile(path, b, 0o600)
		},
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			corrupt(t, path)
			before, _ := os.ReadFile(path)
			s, err := Open(dir, Options{})
			if err == nil {
				s.Close()
				t.Fatal("corrupt file opened without error")
			}
			var oe *OpenError
			if !errors.As(err, &oe) || oe.Reason != "corrupt" {
				t.Fatalf("open = %v, want corrupt OpenError", err)
			}
			if !strings.Contains(err.Error(), "corrupt") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("message not a clear one-liner: %q", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Fatal("corrupt file was modified")
			}
		})
	}
}

// truncated returns a corruption that cuts a populated file to size bytes
// (-2: half the file).
func truncated(size int) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		s, err := Open(filepath.Dir(path), Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 400; i++ {
			store.Put(context.Background(), s, fmt.Sprintf("/vms/%04d", i), bytes.Repeat([]byte("x"), 200))
		}
		s.Close()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		n := int64(size)
		if size == -2 {
			n = fi.Size() / 2
		}
		if err := os.Truncate(path, n); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGroupCommitIsolatesConflicts checks that in one commit group a failed
// compare rejects only its own transaction.
func TestGroupCommitIsolatesConflicts(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Every writer creates /dup (only one may win) and its own key.
			_, errs[i] = s.Txn(ctx, []store.Cond{{Key: "/dup", ModRev: 0}},
				[]store.Op{store.PutOp("/dup", []byte{byte(i)}), store.PutOp(fmt.Sprintf("/own/%02d", i), nil)})
		}(i)
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !store.IsConflict(err):
			t.Fatalf("unexpected error %v", err)
		}
	}
	own, _ := s.List(ctx, "/own/")
	if wins != 1 || len(own) != 1 {
		t.Fatalf("%d winners, %d own keys; want exactly 1 each", wins, len(own))
	}
}

func BenchmarkTxnParallel16(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	val := bytes.Repeat([]byte("v"), 300)
	var mu sync.Mutex
	n := 0
	b.SetParallelism(16)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			k := fmt.Sprintf("/k/%d", n)
			mu.Unlock()
			if _, err := store.Put(ctx, s, k, val); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "txn/s")
}
