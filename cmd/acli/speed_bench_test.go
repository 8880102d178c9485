package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
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

// BenchmarkVersion runs acli --version alternating with two programs built
// the same way: one that does nothing (the Go runtime's own start-up, the
// floor for any Go binary) and one that links every package acli links
// from the standard library and its dependencies, doing nothing either
// (their package initialisation: the floor for a binary with acli's
// dependencies). acli minus deps is acli's own start-up.
func BenchmarkVersion(b *testing.B) {
	dir := b.TempDir()
	out, err := goAsMake("list", "-deps", ".").Output() // what make build links
	if err != nil {
		b.Fatal(err)
	}
	var deps strings.Builder
	deps.WriteString("package main\n\nimport (\n")
	for _, p := range strings.Fields(string(out)) {
		if p == "main" || strings.HasPrefix(p, "github.com/acli-dev/") || strings.HasPrefix(p, "vendor/") ||
			strings.HasPrefix(p, "internal/") || strings.Contains(p, "/internal") {
			continue // ours, or not importable (linked through what imports it)
		}
		deps.WriteString("\t_ \"" + p + "\"\n")
	}
	deps.WriteString(")\n\nfunc main() {}\n")
	bins := map[string]string{}
	for name, src := range map[string]string{"empty": "package main\n\nfunc main() {}\n", "deps": deps.String()} {
		file := filepath.Join(dir, name+".go")
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			b.Fatal(err)
		}
		bins[name] = filepath.Join(dir, name)
		if out, err := goBuild(bins[name], file).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	run := func(bin string) time.Duration {
		start := time.Now()
		if err := exec.Command(bin, "--version").Run(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var ta, td, te []time.Duration
	for i := 0; i < b.N; i++ {
		ta = append(ta, run(filepath.Join(binDir, "acli")))
		td = append(td, run(bins["deps"]))
		te = append(te, run(bins["empty"]))
	}
	b.ReportMetric(medianMs(ta), "ms-acli")
	b.ReportMetric(medianMs(td), "ms-deps")
	b.ReportMetric(medianMs(te), "ms-empty")
}

func benchPaired(b *testing.B, addr, cmd string) {
	bare := filepath.Join(b.TempDir(), "bareclient")
	if out, err := goBuild(bare, "./testdata/bareclient").CombinedOutput(); err != nil {
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
