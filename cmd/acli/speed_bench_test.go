package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// Paired benchmarks: acli and a bare one-call gRPC client (testdata/
// bareclient) against the same server in one run, alternating, so the
// ratio holds whatever the machine's load. Targets (issue 16): host.list
// at most 1.2x the bare client, vm.list of 300 VMs 1.5x, --version 3 ms.

func BenchmarkPairedHostList(b *testing.B) {
	addr := startClusterd(b)
	benchPaired(b, addr, "host.list")
}

func BenchmarkPairedVMList300(b *testing.B) {
	addr := startClusterd(b)
	for i := 0; i < 3; i++ {
		// 300 VMs, 100 a call: ranges generate the names.
		if r := acli(b, addr, "", "vm.create", "vm"+string(rune('a'+i))+"[001..100]", "memory=1G"); r.code != 0 {
			b.Fatalf("%+v", r)
		}
	}
	benchPaired(b, addr, "vm.list")
}

func BenchmarkVersion(b *testing.B) {
	var times []time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if out, err := exec.Command(filepath.Join(binDir, "acli"), "--version").Output(); err != nil || len(out) == 0 {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.ReportMetric(medianMs(times), "ms-median")
}

func benchPaired(b *testing.B, addr, cmd string) {
	bare := filepath.Join(b.TempDir(), "bareclient")
	if out, err := exec.Command("go", "build", "-o", bare, "./testdata/bareclient").CombinedOutput(); err != nil {
		b.Fatalf("build bareclient: %v\n%s", err, out)
	}
	run := func(bin string, args ...string) time.Duration {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), "ACLI_SERVER="+addr, "HOME="+b.TempDir())
		start := time.Now()
		out, err := c.Output()
		d := time.Since(start)
		if err != nil || len(out) == 0 {
			b.Fatalf("%s %v: %v", bin, args, err)
		}
		return d
	}
	var ta, tb []time.Duration
	for i := 0; i < b.N; i++ {
		ta = append(ta, run(filepath.Join(binDir, "acli"), cmd))
		tb = append(tb, run(bare, cmd))
	}
	a, c := medianMs(ta), medianMs(tb)
	b.ReportMetric(a, "ms-acli")
	b.ReportMetric(c, "ms-bare")
	b.ReportMetric(a/c, "ratio")
}

func medianMs(d []time.Duration) float64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[len(d)/2].Microseconds()) / 1000
}
