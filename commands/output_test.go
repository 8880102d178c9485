package commands

import (
	"context"
	"encoding/json"

	"sort"
	"strings"
	"testing"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/client/clienttest"
	"github.com/acli-dev/acli/render"
)

// Every table and key/value block, for a terminal and for a pipe.
func TestGoldenViews(t *testing.T) {
	h := fixture(t)
	cases := []struct{ name, line string }{
		{"cluster.get", "cluster.get"},
		{"cluster.status", "cluster.status"},
		{"cluster.status.json", "-o json cluster.status"},
		{"host.list", "host.list"},
		{"host.list.noheaders", "--no-headers host.list"},
		{"host.get", "host.get node-1"},
		{"host.get.glob", "host.get node-[12]"},
		{"host.get.block", "-o block host.get node-1"},
		{"host.get.glob.block", "-o block host.get node-[12]"},
		{"host.get.json", "-o json host.get node-1"},
		{"host.list.wide", "-o wide host.list"},
		{"host.list.json", "-o json host.list"},
		{"host.list_vms", "host.list_vms node-2"},
		{"vm.list", "vm.list"},
		{"vm.list.on", "vm.list power_state=on"},
		{"vm.get", "vm.get web01"},
		{"vm.get.block", "-o block vm.get web01"},
		{"vm.get.wide", "-o wide vm.get web01"},
		{"vm.get.json", "-o json vm.get web01"},
		{"vm.get.json-pretty", "-o json-pretty vm.get web01"},
		{"vm.get.name", "-o name vm.get web*"},
		{"vm.list.json", "-o json vm.list"},
		{"vm.disk_list", "vm.disk_list web01"},
		{"vm.nic_list", "vm.nic_list web01"},
		{"net.list", "net.list"},
		{"net.get", "net.get vlan100"},
		{"net.get.block", "-o block net.get vlan100"},
		{"net.list.wide", "-o wide net.list"},
		{"net.list.json", "-o json net.list"},
		{"net.get.ipam", "net.get prod"},
		{"net.get.ipam.block", "-o block net.get prod"},
		{"net.get.ipam.json", "-o json net.get prod"},
		{"net.list_vms", "net.list_vms prod"},
		{"net.list_vms.wide", "-o wide net.list_vms prod"},
		{"net.get_virtual_switch", "net.get_virtual_switch"},
		{"net.get_virtual_switch.block", "-o block net.get_virtual_switch vs0"},
		{"vm.nic_get", "vm.nic_get web01"},
		{"vm.nic_get.mac", "vm.nic_get web01 50:6b:8d:00:00:0a"},
		{"vm.nic_get.json", "-o json vm.nic_get web01 50:6b:8d:00:00:0a"},
		{"vm.nic_get.block", "-o block vm.nic_get web01 50:6b:8d:00:00:0a"},
		{"task.list", "task.list limit=3"},
		{"task.list.wide", "-o wide task.list limit=3"},
		{"task.list.ops", "task.list operation_type_list=kNetworkCreate,VmPowerOn"},
		{"task.list.running", "task.list include_completed=false"},
		{"task.get", "task.get 00000000-0000-4000-8000-7a5c00000002"},
		{"task.get.block", "-o block task.get 00000000-0000-4000-8000-7a5c00000002"},
		{"task.get.json-pretty", "-o json-pretty task.get 00000000-0000-4000-8000-7a5c00000002"},
		{"host.list.csv", "-o csv -c uuid,name,hypervisor_ip,cvm_ip,node_state,schedulable,schedulable_reason host.list"},
		{"vm.get.yaml", "-o yaml vm.get web01"},
		{"vm.get.csv", "-o csv vm.get web01"},
		{"vm.list.wide", "-o wide vm.list"},
		{"vm.list.name", "-o name vm.list"},
		{"vm.list.value", "-o value -c name,power_state,host --sort-by name vm.list"},
		{"vm.list.columns", "-c name,memory --sort-by memory vm.list"},
		{"vm.list.csv.columns", "-o csv -c name,power_state,memory_bytes vm.list"},
		{"vm.list.jq", "--jq .[].name vm.list"},
		{"host.list.columns", "-c name,node_state,cvm_ip host.list"},
		{"cluster.get.value", "-o value -c name,driver cluster.get"},
	}
	for _, tty := range []bool{true, false} {
		mode := "pipe"
		if tty {
			mode = "tty"
		}
		h.tty = tty
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				code, out, errOut := h.run(strings.Fields(c.line)...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				golden(t, mode+"/"+c.name+".txt", out)
			})
		}
	}
}

// Mutations: progress in place on a terminal, plain lines in a pipe.
func TestGoldenTaskProgress(t *testing.T) {
	lines := []string{
		"vm.create web01 memory=1G",
		"vm.on web01",
		"vm.create x memory=1G wait=false",
		"vm.create app[1..3] memory=1G",
		"vm.on app*",
	}
	for _, tty := range []bool{true, false} {
		mode := "pipe"
		if tty {
			mode = "tty"
		}
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t)
			h.tty = tty
			var all strings.Builder
			for _, line := range lines {
				many := strings.ContainsAny(line, "[*")
				if many && tty {
					continue // concurrent in-place redraws interleave by design
				}
				code, out, errOut := h.run(strings.Fields(line)...)
				if code != 0 {
					t.Fatalf("%s: exit %d: %s", line, code, errOut)
				}
				if many {
					out = byLabel(out)
				}
				all.WriteString("$ acli " + line + "\n" + out)
			}
			golden(t, mode+"/tasks.txt", all.String())
		})
	}
}

// byLabel groups progress lines of concurrent tasks by their label,
// keeping each task's own order: tasks finish in any order.
func byLabel(out string) string {
	lines := strings.SplitAfter(out, "\n")
	label := func(l string) string { s, _, _ := strings.Cut(l, ":"); return s }
	sort.SliceStable(lines, func(i, j int) bool { return label(lines[i]) < label(lines[j]) })
	return strings.Join(lines, "")
}

type envelope struct {
	Data   json.RawMessage `json:"data"`
	Error  *string         `json:"error"`
	Status int             `json:"status"`
}

func decodeEnvelope(t *testing.T, out string) envelope {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var e envelope
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document:\n%s", out)
	}
	return e
}

func TestJSONEnvelope(t *testing.T) {
	h := fixture(t)
	t.Run("list", func(t *testing.T) {
		code, out, _ := h.run("-o", "json", "vm.list")
		e := decodeEnvelope(t, out)
		if code != 0 || e.Status != 0 || e.Error != nil {
			t.Fatalf("code %d envelope %+v", code, e)
		}
		var vms []map[string]any
		if err := json.Unmarshal(e.Data, &vms); err != nil {
			t.Fatal(err)
		}
		if len(vms) != 3 || vms[0]["name"] != "db01" || vms[1]["power_state"] != "kOn" {
			t.Fatalf("data: %s", e.Data)
		}
		if _, ok := vms[0]["ha_priority"]; !ok {
			t.Fatalf("unpopulated fields must be present for scripts: %s", e.Data)
		}
	})
	t.Run("get", func(t *testing.T) {
		_, out, _ := h.run("-o", "json", "host.get", "127.20.0.21")
		e := decodeEnvelope(t, out)
		// acli keys a get's data by the entity's name, with its field names.
		var hosts map[string]map[string]any
		if err := json.Unmarshal(e.Data, &hosts); err != nil {
			t.Fatal(err)
		}
		host := hosts["127.20.0.21"]
		if host["node_state"] != "kAcropolisNormal" || host["name"] != "node-1" || host["memory_size_bytes"] != float64(256<<30) {
			t.Fatalf("data: %s", e.Data)
		}
	})
	t.Run("mutation", func(t *testing.T) {
		code, out, _ := h.run("-o", "json", "vm.create", "j[1..2]", "memory=1G")
		e := decodeEnvelope(t, out)
		var tasks []map[string]any
		if err := json.Unmarshal(e.Data, &tasks); err != nil {
			t.Fatal(err)
		}
		if code != 0 || len(tasks) != 2 || tasks[0]["status"] != "kSucceeded" || tasks[0]["operation"] != "kVmCreate" {
			t.Fatalf("code %d data %s", code, e.Data)
		}
	})
	t.Run("failure", func(t *testing.T) {
		code, out, errOut := h.run("-o", "json", "vm.get", "nope")
		e := decodeEnvelope(t, out)
		if code != 3 || e.Status != 3 || string(e.Data) != "null" || e.Error == nil || !strings.Contains(*e.Error, `"nope" not found`) {
			t.Fatalf("code %d envelope %+v", code, e)
		}
		if !strings.Contains(errOut, `VM "nope" not found`) {
			t.Fatalf("error must also go to stderr: %q", errOut)
		}
	})
	t.Run("usage", func(t *testing.T) {
		code, out, _ := h.run("-o", "json", "vm.lst")
		e := decodeEnvelope(t, out)
		if code != 2 || e.Status != 2 || e.Error == nil || !strings.Contains(*e.Error, `did you mean "vm.list"`) {
			t.Fatalf("code %d envelope %+v", code, e)
		}
	})
}

// BenchmarkVMList10kInProcess is vm.list over 10,000 VMs without process
// start-up: decoding, the table and its layout.
func BenchmarkVMList10kInProcess(b *testing.B) {
	fake := clienttest.New()
	fake.AddVMs("vm", 10000)
	c := fake.Serve(b)
	for b.Loop() {
		io, _, _ := render.Test("", false)
		f := &Factory{IO: io, Registry: Default(), Connect: func(context.Context, client.Options) (*client.Client, error) { return c, nil }}
		if code := f.Execute(context.Background(), []string{"vm.list"}); code != 0 {
			b.Fatal(code)
		}
	}
}

// vm.get shows acli's hardware settings where acli prints them.
func TestGoldenVmSettings(t *testing.T) {
	h := fixture(t)
	if code, _, errOut := h.run(strings.Fields("vm.create sap01 memory=8G num_vcpus=4 num_threads_per_core=2 uefi_boot=true num_vnuma_nodes=2 " +
		"hardware_virtualization=true memory_overcommit=true vcpu_hard_pin=true cpu_passthrough=true virtual_tpm=true annotation=SAP")...); code != 0 {
		t.Fatalf("vm.create: exit %d: %s", code, errOut)
	}
	for _, c := range []struct{ name, line string }{
		{"vm.get.settings", "vm.get sap01"},
		{"vm.get.settings.block", "-o block vm.get sap01"},
	} {
		code, out, errOut := h.run(strings.Fields(c.line)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.line, code, errOut)
		}
		golden(t, "pipe/"+c.name+".txt", out)
	}
	if code, _, errOut := h.run(strings.Fields("vm.create x annotation=a description=b")...); code != 2 ||
		errOut != "Error: vm.create: annotation= and description= set the same text; give one\n" {
		t.Fatalf("annotation with description: exit %d: %q", code, errOut)
	}
}
