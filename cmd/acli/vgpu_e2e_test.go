package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden/e2e")

// uuidRe and timeRe find what changes from run to run: UUIDs (a golden
// file numbers them by first appearance) and times.
var (
	uuidRe = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRe = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
)

// goldenE2E compares out, its UUIDs numbered by first appearance and its
// times masked, with testdata/golden/e2e/name (rewritten with -update).
func goldenE2E(t *testing.T, name, out string) {
	t.Helper()
	n := map[string]string{}
	got := uuidRe.ReplaceAllStringFunc(out, func(u string) string {
		if n[u] == "" {
			n[u] = fmt.Sprintf("<uuid-%d>", len(n)+1)
		}
		return n[u]
	})
	got = timeRe.ReplaceAllString(got, "<time>")
	path := filepath.Join("..", "..", "testdata", "golden", "e2e", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("missing golden %s (run go test -update): %v", path, err)
	}
	if string(want) != got {
		t.Errorf("%s differs from golden\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

// vGPUs through the built binaries against a clusterd whose second sim
// host has a Tesla M60 split into 2Q or 8Q profiles: assign by profile,
// power on, read them back on the VM and the host, what refuses them,
// and deassign.
func TestVgpuEndToEnd(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sim.yaml")
	if err := os.WriteFile(cfg, []byte(`host_list:
  - {}
  - devices:
      - kind: gpu
        vendor: Nvidia
        model: Tesla_M60
        profiles: [{name: 2Q, count: 2, type: nvidia-18}, {name: 8Q, count: 1, type: nvidia-22}]
  - {}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := startClusterdWith(t, "--sim-config", cfg, "--sim-speed", "1000")
	run := func(code int, out, errOut string, args ...string) {
		t.Helper()
		r := acli(t, addr, "", args...)
		if r.code != code || r.out != out || r.err != errOut {
			t.Fatalf("acli %s: exit %d (want %d)\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s",
				strings.Join(args, " "), r.code, code, r.out, out, r.err, errOut)
		}
	}
	get := func(name string, args ...string) {
		t.Helper()
		r := acli(t, addr, "", args...)
		if r.code != 0 || r.err != "" {
			t.Fatalf("acli %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.out, r.err)
		}
		goldenE2E(t, name, r.out)
	}
	const assigned = "VmGpuAssign: pending\nVmGpuAssign: complete\n"
	for _, n := range []string{"vdi01", "vdi02", "vdi03"} {
		run(0, "VmCreate: pending\nVmCreate: complete\n", "", "vm.create", n, "memory=2G")
	}
	run(0, assigned, "", "vm.gpu_assign", "vdi01", "gpu=Nvidia_Tesla_M60-2Q")
	run(0, assigned, "", "vm.gpu_assign", "vdi02", "gpu=nvidia:tesla_m60-2q", "mode=virtual")
	run(0, assigned, "", "vm.gpu_assign", "vdi03", "gpu=Nvidia_Tesla_M60-8Q")
	run(3, "Unknown name: Nvidia_Tesla_M60\n", "Error: vgpu profile \"Nvidia_Tesla_M60\" not found (did you mean \"Nvidia_Tesla_M60-2Q\"?)\n",
		"vm.gpu_assign", "vdi03", "gpu=Nvidia_Tesla_M60", "mode=virtual")
	get("vgpu-vm.get.off.txt", "vm.get", "vdi03")

	// Two 2Q VMs share the GPU; the 8Q finds no GPU with room.
	run(0, "VmPowerOn: pending\nVmPowerOn: complete\n", "", "vm.on", "vdi01")
	run(0, "VmPowerOn: pending\nVmPowerOn: complete\n", "", "vm.on", "vdi02")
	r := acli(t, addr, "", "vm.on", "vdi03")
	if r.code != 5 || !strings.Contains(r.err, "host h2 (127.20.0.22): host h2 (127.20.0.22) has no GPU with room for a vGPU Nvidia_Tesla_M60-8Q") {
		t.Fatalf("vm.on vdi03: exit %d\n%s%s", r.code, r.out, r.err)
	}
	get("vgpu-vm.get.txt", "vm.get", "vdi01")
	get("vgpu-host.get.txt", "host.get", "127.20.0.22")
	get("vgpu-vm.get.json.txt", "-o", "json", "vm.get", "vdi01")
	// h3 has no such GPU: moving offline would be refused too, so live=false
	// is not suggested.
	run(5, "", "Error: vm vdi01 cannot move, live or offline: vm vdi01 has a vGPU Nvidia_Tesla_M60-2Q and cannot live-migrate; cannot move vm vdi01 to h3 (127.20.0.23): no GPU with room for a vGPU Nvidia_Tesla_M60-2Q\n",
		"vm.migrate", "vdi01", "host=127.20.0.23", "live=yes")
	// No other host has the profile: cold maintenance would not move it,
	// so the hint names only what shuts it down.
	r = acli(t, addr, "", "host.enter_maintenance_mode_check", "127.20.0.22")
	if r.code != 5 {
		t.Fatalf("maintenance check: exit %d\n%s%s", r.code, r.out, r.err)
	}
	goldenE2E(t, "vgpu-maintenance-check.txt", r.out)

	run(0, "VmPowerOff: pending\nVmPowerOff: complete\n", "", "vm.off", "vdi01")
	run(0, "VmGpuDeassign: pending\nVmGpuDeassign: complete\n", "", "vm.gpu_deassign", "vdi01", "gpu=Nvidia_Tesla_M60-2Q")
	// A name the VM lacks is acli's missing name, exit 3, whether the VM
	// has other GPUs (the nearest of them suggested) or none.
	run(3, "Unknown name: Nvidia_Tesla_M60-2R\n", "Error: gpu \"Nvidia_Tesla_M60-2R\" not found (did you mean \"Nvidia_Tesla_M60-2Q\"?)\n",
		"vm.gpu_deassign", "vdi02", "gpu=Nvidia_Tesla_M60-2R")
	run(3, "Unknown name: Nvidia_Tesla_M60-2Q\n", "Error: gpu \"Nvidia_Tesla_M60-2Q\" not found: vm vdi01 has no passthrough GPU\n", "vm.gpu_deassign", "vdi01", "gpu=Nvidia_Tesla_M60-2Q")
	get("vgpu-host.get.after.txt", "host.get", "127.20.0.22")
}
