package completion

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acli-dev/acli/commands"
	prompt "github.com/elk-language/go-prompt"
	istrings "github.com/elk-language/go-prompt/strings"
)

func names(k commands.Kind) []commands.Entity {
	switch k {
	case commands.KindVM:
		return []commands.Entity{{Name: "web01", UUID: "u1"}, {Name: "web02", UUID: "u2"}, {Name: "db01", UUID: "u3"}}
	case commands.KindHost:
		return []commands.Entity{{Name: "node-1", UUID: "h1", Aliases: []string{"127.20.0.21"}}}
	case commands.KindNetwork:
		return []commands.Entity{{Name: "vlan0"}, {Name: "vlan100"}}
	case commands.KindVG:
		return []commands.Entity{{Name: "data", UUID: "g1"}, {Name: "dbvg", UUID: "g2"}}
	}
	return nil
}

func texts(s []commands.Suggestion) string {
	var out []string
	for _, x := range s {
		out = append(out, x.Text)
	}
	return fmt.Sprint(out)
}

func TestComplete(t *testing.T) {
	c := &Completer{Registry: commands.Default(), Names: names}
	cases := []struct {
		line, want string
		start      int
	}{
		{"", "[ads. audit. cluster. container. cvm. event. ha. host. image. net. sim. snapshot. task. token. vg. vm. vm_group.]", 0},
		{"v", "[vg. vm. vm_group.]", 0},
		{"vg.get d", "[data dbvg]", 7},
		{"vg.attach_to_vm data w", "[web01 web02 wait=]", 21},
		{"vg.list_sessions db", "[dbvg]", 17},
		{"event.watch type=i", "[type=iscsi]", 12},
		{"vm.", "[vm.affinity_set vm.affinity_unset vm.assign_pcie_device vm.clone vm.create vm.deassign_pcie_device vm.delete vm.disk_create vm.disk_delete vm.disk_get vm.disk_list vm.disk_update vm.get vm.gpu_assign vm.gpu_deassign vm.list vm.migrate vm.nic_create vm.nic_delete vm.nic_get vm.nic_list vm.nic_update vm.off vm.on vm.power_cycle vm.reboot vm.reset vm.shutdown vm.snapshot_create vm.snapshot_list vm.update vm.update_boot_device]", 0},
		{"vm.cr", "[vm.create]", 0},
		{"vm.dis", "[vm.disk_create vm.disk_delete vm.disk_get vm.disk_list vm.disk_update]", 0},
		{"vm.m", "[vm.migrate]", 0},
		{"  host.l", "[host.list host.list_vms]", 2},
		{"vm.list ", "[db01 web01 web02 host= power_state=]", 8},
		{"vm.list p", "[power_state=]", 8},
		{"vm.list power_state=", "[power_state=kOn power_state=kOff power_state=kPaused]", 8},
		{"vm.list power_state=of", "[power_state=kOff]", 8},
		{"vm.list power_state=kP", "[power_state=kPaused]", 8},
		{"vm.list host=", "[host=node-1]", 8},
		{"vm.list host=127", "[host=127.20.0.21]", 8},
		{"vm.on w", "[web01 web02 wait=]", 6},
		{"vm.on web01,d", "[web01,db01]", 6},
		{"vm.on web01 ", "[db01 web01 web02 host= wait=]", 12},
		{"vm.get db01 ", "[db01 web01 web02 include_vmdisk_paths=]", 12},
		{"vm.disk_list web01 ", "[]", 19},
		{"vm.create ", "[memory= num_vcpus= num_cores_per_vcpu= ha_priority= agent_vm= description= passthrough= uuid= annotation= uefi_boot= num_vnuma_nodes= num_threads_per_core= hardware_virtualization= memory_overcommit= vcpu_hard_pin= cpu_passthrough= virtual_tpm= wait=]", 10},
		{"vm.create w memory=4G ", "[num_vcpus= num_cores_per_vcpu= ha_priority= agent_vm= description= passthrough= uuid= annotation= uefi_boot= num_vnuma_nodes= num_threads_per_core= hardware_virtualization= memory_overcommit= vcpu_hard_pin= cpu_passthrough= virtual_tpm= wait=]", 22},
		{"vm.create w agent_vm=", "[agent_vm=true agent_vm=false]", 12},
		{"vm.nic_create w network=v", "[network=vlan0 network=vlan100]", 16},
		{"net.create n mode=tr", "[mode=kTrunked]", 13},
		{"vm.nosuch ", "[]", 10},
		{`vm.update w description="a b`, "[]", 28},
	}
	for _, tc := range cases {
		got, start := c.Complete(tc.line)
		if texts(got) != tc.want || (len(got) > 0 && start != tc.start) {
			t.Errorf("%q: got %s at %d, want %s at %d", tc.line, texts(got), start, tc.want, tc.start)
		}
	}
	// Descriptions: summaries for actions, type and help for keys.
	got, _ := c.Complete("vm.crea")
	if got[0].Description != "Create VMs (powered off)" {
		t.Errorf("action summary: %q", got[0].Description)
	}
	got, _ = c.Complete("vm.create x mem")
	if got[0].Description != "size, default 2G: memory of the VM" {
		t.Errorf("key description: %q", got[0].Description)
	}
}

func TestPromptAdapter(t *testing.T) {
	c := &Completer{Registry: commands.Default(), Names: names}
	buf := prompt.NewBuffer()
	buf.InsertTextMoveCursor("vm.list power_state=of", 80, 24, false)
	sugs, start, end := c.Prompt(*buf.Document())
	if len(sugs) != 1 || sugs[0].Text != "power_state=kOff" || start != 8 || end != 22 {
		t.Fatalf("got %v %d..%d", sugs, start, end)
	}
	c.Names = func(commands.Kind) []commands.Entity { return []commands.Entity{{Name: "wébserver"}} }
	buf = prompt.NewBuffer()
	buf.InsertTextMoveCursor("vm.on wéb", 80, 24, false) // runes, not bytes
	_, start, end = c.Prompt(*buf.Document())
	if start != 6 || end != 9 {
		t.Fatalf("rune positions %d..%d", start, end)
	}
}

// What go-prompt does with a suggestion: Tab inserts it over start..end;
// the next key (Space, Enter) replaces the word back to the separator with
// it once more. The line must read the same after both: what is shown is
// what runs ("vm.migrate web01 host=h1" must not become "... h1").
func TestSelectedSuggestionRunsAsShown(t *testing.T) {
	c := &Completer{Registry: commands.Default(), Names: names}
	for _, line := range []string{
		"vm.migrate web01 host=", "vm.list power_state=", "vm.list power_state=of", "vm.on web01,w",
		"vm.create x mem", "vm.create x agent_vm=t", "vm.nic_create w network=v", "vm.", "  host.l",
		"hostssh --ex", "vg.attach_external data ", "event.watch type=",
	} {
		buf := prompt.NewBuffer()
		buf.InsertTextMoveCursor(line, 200, 24, false)
		sugs, start, end := c.Prompt(*buf.Document())
		if len(sugs) == 0 {
			t.Errorf("%q: no suggestions", line)
			continue
		}
		for _, s := range sugs {
			b := prompt.NewBuffer()
			b.InsertTextMoveCursor(line, 200, 24, false)
			b.DeleteBeforeCursorRunes(end-start, 200, 24)
			b.InsertTextMoveCursor(s.Text, 200, 24, false)
			shown := b.Text()
			w := b.Document().GetWordBeforeCursorUntilSeparator(WordSeparator)
			b.DeleteBeforeCursorRunes(istrings.RuneCountInString(w), 200, 24)
			b.InsertTextMoveCursor(s.Text, 200, 24, false)
			if b.Text() != shown {
				t.Errorf("%q + %q: shown %q, runs %q", line, s.Text, shown, b.Text())
			}
		}
	}
	buf := prompt.NewBuffer()
	buf.InsertTextMoveCursor("vm.migrate web01 host=", 200, 24, false)
	if sugs, _, _ := c.Prompt(*buf.Document()); len(sugs) != 1 || sugs[0].Text != "host=node-1" {
		t.Errorf("host= offers %v", sugs)
	}
}

func TestCacheServesInstantlyAndRefreshesInBackground(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	fetch := func(ctx context.Context, k commands.Kind) ([]commands.Entity, error) {
		calls.Add(1)
		<-release
		return []commands.Entity{{Name: fmt.Sprintf("vm-%d", calls.Load())}}, nil
	}
	c := NewCache(fetch, time.Hour)
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	start := time.Now()
	if got := c.Names(commands.KindVM); got != nil {
		t.Fatalf("first call must not block or invent names: %v", got)
	}
	if time.Since(start) > 50*time.Millisecond {
		t.Fatal("Names blocked on the fetch")
	}
	c.Names(commands.KindVM) // a second keystroke: no second fetch in flight
	close(release)
	c.Wait()
	if calls.Load() != 1 {
		t.Fatalf("fetches: %d", calls.Load())
	}
	if got := c.Names(commands.KindVM); len(got) != 1 || got[0].Name != "vm-1" {
		t.Fatalf("cached: %v", got)
	}
	now = now.Add(2 * time.Hour) // stale: serve old names, refresh behind
	if got := c.Names(commands.KindVM); got[0].Name != "vm-1" {
		t.Fatalf("stale names must still be served: %v", got)
	}
	c.Wait()
	if got := c.Names(commands.KindVM); got[0].Name != "vm-2" {
		t.Fatalf("refreshed: %v", got)
	}
}

func TestCacheSilentWhenDown(t *testing.T) {
	c := NewCache(func(context.Context, commands.Kind) ([]commands.Entity, error) {
		return nil, errors.New("cannot reach clusterd")
	}, time.Hour)
	c.Names(commands.KindHost)
	c.Wait()
	if got := c.Names(commands.KindHost); got != nil {
		t.Fatalf("got %v", got)
	}
}

// BenchmarkCompleteKeystroke measures one keystroke's completion with
// 10,000 live VM names (target: under 5 ms).
func BenchmarkCompleteKeystroke(b *testing.B) {
	var vms []commands.Entity
	for i := range 10000 {
		vms = append(vms, commands.Entity{Name: fmt.Sprintf("vm%05d", i), UUID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)})
	}
	c := &Completer{Registry: commands.Default(), Names: func(commands.Kind) []commands.Entity { return vms }}
	lines := []string{"vm.on ", "vm.on vm0", "vm.on vm0999", "vm.get vm01234,vm", "vm.li"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Complete(lines[i%len(lines)])
	}
}

func TestCompleteFanout(t *testing.T) {
	c := &Completer{Registry: commands.Default(), Names: names}
	for _, tc := range []struct {
		line, want string
		start      int
	}{
		{"h", "[ha. host. hostssh]", 0},
		{"hostss", "[hostssh]", 0},
		{"al", "[allssh]", 0},
		{"hostssh --ex", "[--exclude]", 8},
		{"allssh -f 8 --g", "[--gather]", 12},
		{"hostssh --hosts a --co", "[--command-timeout --connect-timeout]", 18},
		{"hostssh --gather --ma", "[--max-exit]", 17},
		{"hostssh -o json --known-hosts f --in", "[--insecure-ignore-host-key]", 32},
		{"hostssh ", "[]", 8},
		{"hostssh virsh --", "[]", 14}, // inside the remote command
		{"hostssh --hosts ", "[]", 16},
	} {
		got, start := c.Complete(tc.line)
		if texts(got) != tc.want || (len(got) > 0 && start != tc.start) {
			t.Errorf("%q: got %s at %d, want %s at %d", tc.line, texts(got), start, tc.want, tc.start)
		}
	}
	if got, _ := c.Complete("allssh --fan"); len(got) != 1 || got[0].Description != "maximum hosts at once" {
		t.Errorf("flag description: %+v", got)
	}
}
