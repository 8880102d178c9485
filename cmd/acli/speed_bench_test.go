package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
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

// BenchmarkVersion runs acli --version alternating with three programs
// built the same way that do nothing: "empty" links nothing (the Go
// runtime's own start-up, the floor for any Go binary), "grpc" links what
// the bare client links (grpc, protobuf and acli's API: the floor for a
// gRPC client of clusterd), "deps" links every package acli links from the
// standard library and its dependencies (their package initialisation).
// acli minus deps is acli's own start-up. Besides wall time (which the
// machine's load skews) each reports the CPU time and page faults of one
// run (getrusage), which load barely moves.
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
	grpcOnly := "package main\n\nimport (\n\t_ \"github.com/acli-dev/acli/api/acli/v1\"\n\t_ \"google.golang.org/grpc\"\n" +
		"\t_ \"google.golang.org/grpc/credentials/insecure\"\n)\n\nfunc main() {}\n"
	names := []string{"acli", "deps", "grpc", "empty"}
	bins := map[string]string{"acli": filepath.Join(binDir, "acli")}
	for name, src := range map[string]string{"empty": "package main\n\nfunc main() {}\n", "grpc": grpcOnly, "deps": deps.String()} {
		file := filepath.Join(dir, name+".go")
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			b.Fatal(err)
		}
		bins[name] = filepath.Join(dir, name)
		if out, err := goBuild(bins[name], file).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	runs := map[string]*samples{}
	for _, n := range names {
		runs[n] = &samples{}
	}
	for i := 0; i < b.N; i++ {
		for _, n := range names {
			runs[n].add(b, exec.Command(bins[n], "--version"))
		}
	}
	for _, n := range names {
		runs[n].report(b, n)
	}
}

// samples are the wall time, CPU time (user and system) and minor page
// faults of runs of one program.
type samples struct {
	wall, cpu []time.Duration
	faults    []float64
}

func (s *samples) add(b *testing.B, c *exec.Cmd) {
	start := time.Now()
	if err := c.Run(); err != nil {
		b.Fatalf("%v: %v", c.Args, err)
	}
	s.wall = append(s.wall, time.Since(start))
	s.cpu = append(s.cpu, c.ProcessState.UserTime()+c.ProcessState.SystemTime())
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.faults = append(s.faults, float64(ru.Minflt))
	}
}

// report gives the medians as ms-NAME, cpu-ms-NAME and faults-NAME.
func (s *samples) report(b *testing.B, name string) {
	b.ReportMetric(medianMs(s.wall), "ms-"+name)
	b.ReportMetric(medianMs(s.cpu), "cpu-ms-"+name)
	if len(s.faults) > 0 {
		sort.Float64s(s.faults)
		b.ReportMetric(s.faults[len(s.faults)/2], "faults-"+name)
	}
}

func benchPaired(b *testing.B, addr, cmd string) {
	bare := filepath.Join(b.TempDir(), "bareclient")
	if out, err := goBuild(bare, "./testdata/bareclient").CombinedOutput(); err != nil {
		b.Fatalf("build bareclient: %v\n%s", err, out)
	}
	home := b.TempDir()
	run := func(s *samples, bin string) {
		c := exec.Command(bin, cmd)
		c.Env = append(os.Environ(), "ACLI_SERVER="+addr, "HOME="+home)
		var out strings.Builder
		c.Stdout = &out
		s.add(b, c)
		if out.Len() == 0 {
			b.Fatalf("%s %s printed nothing", bin, cmd)
		}
	}
	var acliRuns, bareRuns samples
	for i := 0; i < b.N; i++ {
		run(&acliRuns, filepath.Join(binDir, "acli"))
		run(&bareRuns, bare)
	}
	acliRuns.report(b, "acli")
	bareRuns.report(b, "bare")
	b.ReportMetric(medianMs(acliRuns.wall)/medianMs(bareRuns.wall), "ratio")
	b.ReportMetric(medianMs(acliRuns.cpu)/medianMs(bareRuns.cpu), "cpu-ratio")
}

func medianMs(d []time.Duration) float64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[len(d)/2].Microseconds()) / 1000
}
