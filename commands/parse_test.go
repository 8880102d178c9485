package commands

import (
	"errors"
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
)

func TestParse(t *testing.T) {
	reg := Default()
	ok := []struct {
		line  string
		check func(*Invocation) bool
	}{
		{"vm.list", func(i *Invocation) bool { return !i.Set["host"] }},
		{"vm.list power_state=kOn", func(i *Invocation) bool { return i.Values["power_state"].Int == int64(acliv1.PowerState_kOn) }},
		{"vm.list power_state=ON", func(i *Invocation) bool { return i.Values["power_state"].Raw == "kOn" }},
		{"vm.list power_state=paused", func(i *Invocation) bool { return i.Values["power_state"].Int == int64(acliv1.PowerState_kPaused) }},
		{"net.create n1 mode=kTrunked", func(i *Invocation) bool { return i.Values["mode"].Int == int64(acliv1.NetworkMode_kTrunked) }},
		{"net.create n1 mode=trunk", func(i *Invocation) bool { return i.Values["mode"].Int == int64(acliv1.NetworkMode_kTrunked) }},
		{"net.create n1", func(i *Invocation) bool {
			return i.Values["mode"].Int == int64(acliv1.NetworkMode_kAccess) && i.Values["vlan"].Int == 0
		}},
		{"vm.create web01 memory=4G", func(i *Invocation) bool {
			return i.Values["memory"].Int == 4<<30 && i.Values["num_vcpus"].Int == 1 && i.Values["wait"].Bool && !i.Set["wait"]
		}},
		{"vm.create web01 memory=512m", func(i *Invocation) bool { return i.Values["memory"].Int == 512<<20 }},
		{"vm.create web01 memory=1.5GiB", func(i *Invocation) bool { return i.Values["memory"].Int == 3<<29 }},
		{"vm.create web01 memory=1T", func(i *Invocation) bool { return i.Values["memory"].Int == 1<<40 }},
		{"vm.create web01 memory=4G agent_vm=YES", func(i *Invocation) bool { return i.Values["agent_vm"].Bool }},
		{"vm.create web01 memory=4G agent_vm=0", func(i *Invocation) bool { return !i.Values["agent_vm"].Bool && i.Set["agent_vm"] }},
		{"vm.create web01 memory=4G agent_vm=False", func(i *Invocation) bool { return !i.Values["agent_vm"].Bool }},
		{"vm.create web01 memory=4G wait=no", func(i *Invocation) bool { return !i.Values["wait"].Bool }},
		{"vm.create web01 memory=4G ha_priority=-1", func(i *Invocation) bool { return i.Values["ha_priority"].Int == -1 }},
		{"vm.create web[01..20] memory=4G", func(i *Invocation) bool { return i.Args[0][0] == "web[01..20]" }},
		{"vm.on a,b c", func(i *Invocation) bool { return strings.Join(i.Args[0], " ") == "a b c" }},
		{"vm.on web*", func(i *Invocation) bool { return i.Args[0][0] == "web*" }},
		{"vm.update web01 description=two words", nil}, // split by Fields: "words" is a second vm
		{"vm.disk_delete web01 disk_addr=scsi.1", func(i *Invocation) bool { return i.Values["disk_addr"].Raw == "scsi.1" }},
		{"vm.disk_create web01 cdrom=true", func(i *Invocation) bool { return i.Values["cdrom"].Bool }},
		{"vm.nic_create web01 network=vlan0,vlan1", func(i *Invocation) bool { return i.Values["network"].Raw == "vlan0,vlan1" }},
		{"task.list include_completed=1 limit=5", func(i *Invocation) bool { return i.Values["limit"].Int == 5 }},
	}
	for _, c := range ok {
		inv, err := reg.Parse(strings.Fields(c.line))
		if err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		if c.check != nil && !c.check(inv) {
			t.Errorf("%s: parsed wrong: %+v", c.line, inv.Values)
		}
	}
	bad := []struct{ line, want string }{
		{"", "no command given"},
		{"vmm.list", `unknown namespace "vmm"; did you mean "vm"?`},
		{"vm.lst", `unknown action "lst" in namespace vm; did you mean "vm.list"?`},
		{"vm.lsit", `did you mean "vm.list"?`},
		{"vm", `"vm" is a namespace`},
		{"vmlist", `unknown command "vmlist"; did you mean "vm.list"?`},
		{"vm.disk_delete web01", "missing required key disk_addr="},
		{"vm.create web01 memroy=4G", `unknown key "memroy"; did you mean "memory"?`},
		{"vm.create web01 memory=4096", "add a unit: 4096M or 4096G"},
		{"vm.create web01 memory=4X", `unknown unit "x"`},
		{"vm.create web01 memory=lots", "not a size"},
		{"vm.create web01 memory=4G num_vcpus=two", `num_vcpus="two" is not an integer`},
		{"vm.create web01 memory=4G num_vcpus=0", "num_vcpus=0 is out of range (1 to 512)"},
		{"vm.create web01 memory=4G agent_vm=maybe", `agent_vm="maybe" is not a boolean (use true/false, yes/no or 1/0)`},
		{"vm.create web01 memory=4G memory=2G", `key "memory" given twice`},
		{"vm.list power_state=onn", `power_state="onn" is not valid; did you mean "on"? (valid: kOn, kOff, kPaused)`},
		{"net.create n vlan=5000", "vlan=5000 is out of range (0 to 4094)"},
		{"vm.get", "missing vm (usage: vm.get <vm>... [include_vmdisk_paths=<bool>])"},
		{"vm.get web01 extra=1", `vm.get: unknown key "extra" (valid: include_vmdisk_paths)`},
		{"image.get debian12 extra=1", `image.get: unknown key "extra" (image.get takes no key=value arguments; see: acli help image.get)`},
		{"task.list web01", `task.list takes no positional arguments, got "web01"`},
		{"vm.disk_list a b", `unexpected argument "b"`},
		{"vm.disk_list a,b", `takes one vm, got "a,b"`},
		{"vm.disk_list web*", "patterns like"},
		{"vm.update web01", "nothing to change; give at least one of name=, memory="},
		{"vm.disk_create web01", "missing required key create_size=<size>"},
		{"vm.disk_delete web01 disk_addr=scsi", `disk_addr="scsi" is not bus.index, e.g. disk_addr=scsi.1`},
		{"vm.disk_delete web01 disk_addr=usb.1", `unknown bus "usb"`},
		{"vm.on ,", `empty argument ","`},
	}
	for _, c := range bad {
		_, err := reg.Parse(strings.Fields(c.line))
		if err == nil {
			t.Errorf("%q: no error, want %q", c.line, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %s", c.line, err, c.want)
		}
		if client.ExitCode(err) != client.ExitUsage {
			t.Errorf("%q: exit %d, want 2", c.line, client.ExitCode(err))
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error is not one line", c.line)
		}
	}
}

func TestExpand(t *testing.T) {
	live := []Entity{{Name: "web01", UUID: "u1"}, {Name: "web02", UUID: "u2"}, {Name: "db01", UUID: "u3"}, {Name: "node-1", UUID: "h1", Aliases: []string{"127.20.0.21"}}}
	calls := 0
	list := func() ([]Entity, error) { calls++; return live, nil }
	cases := []struct {
		words []string
		want  string
	}{
		{[]string{"web01"}, "web01=web01"},
		{[]string{"web*"}, "web01=u1 web02=u2"},
		{[]string{"web0?", "db*"}, "web01=u1 web02=u2 db01=u3"},
		{[]string{"web[01..02]"}, "web01=u1 web02=u2"},
		{[]string{"*01"}, "web01=u1 db01=u3"},
		{[]string{"web*", "web01"}, "web01=u1 web02=u2 web01=web01"},
		{[]string{"127.20.0.*"}, "node-1=h1"},
		{[]string{"web0[!1]"}, "web02=u2"},
	}
	for _, c := range cases {
		calls = 0
		ts, err := Expand(c.words, KindVM, list)
		if err != nil {
			t.Errorf("%v: %v", c.words, err)
			continue
		}
		var got []string
		for _, tg := range ts {
			got = append(got, tg.Name+"="+tg.ID)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%v: got %v want %s", c.words, got, c.want)
		}
		if calls > 1 {
			t.Errorf("%v: listed %d times", c.words, calls)
		}
	}
	calls = 0
	if _, err := Expand([]string{"plain", "names"}, KindVM, list); err != nil || calls != 0 {
		t.Errorf("plain names must not list entities (calls %d, err %v)", calls, err)
	}
	for _, w := range []string{"zz*", "web[03..04]"} {
		_, err := Expand([]string{w}, KindVM, list)
		if client.ExitCode(err) != client.ExitNotFound {
			t.Errorf("%s: want not found, got %v", w, err)
		}
	}
	wantErr := errors.New("boom")
	if _, err := Expand([]string{"x*"}, KindVM, func() ([]Entity, error) { return nil, wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("list error lost: %v", err)
	}
}

func TestExpandRange(t *testing.T) {
	cases := map[string]string{
		"web[01..03]":     "web01 web02 web03",
		"web[1..3]":       "web1 web2 web3",
		"web[8..10]":      "web8 web9 web10",
		"web[098..100]-x": "web098-x web099-x web100-x",
		"r[1..2]c[1..2]":  "r1c1 r1c2 r2c1 r2c2",
		"plain":           "plain",
	}
	for in, want := range cases {
		got, err := ExpandRange(in)
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("%s: %v %v, want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"w[3..1]", "w[1..20000]", "w[1..200]x[1..200]", "w[1..99999999999999999999]"} {
		if _, err := ExpandRange(in); err == nil {
			t.Errorf("%s: want error", in)
		}
	}
	if _, err := Generate([]string{"web*"}); err == nil || !strings.Contains(err.Error(), "use a range like web[01..20]") {
		t.Errorf("generate glob: %v", err)
	}
}

func TestSizes(t *testing.T) {
	for _, n := range []int64{0, 1, 1023, 1 << 10, 1536, 512 << 20, 4 << 30, 1 << 40, 3 << 39} {
		s := FormatSize(n)
		back, err := ParseSize(s)
		if n >= 1<<10 && n%(1<<10) == 0 && (err != nil || back != n) {
			t.Errorf("%d → %s → %d %v", n, s, back, err)
		}
	}
}

func TestEditDistance(t *testing.T) {
	cases := []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"vm.list", "vm.lsit", 1}, {"list", "lst", 1}, {"kitten", "sitting", 3}, {"ab", "ba", 1}, {"abc", "", 3}}
	for _, c := range cases {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("%q %q: %d want %d", c.a, c.b, got, c.d)
		}
	}
}

func TestRegistryDeclarations(t *testing.T) {
	reg := Default()
	for _, c := range reg.Commands() {
		if c.Summary == "" || len(c.Examples) == 0 {
			t.Errorf("%s needs a summary and an example", c.Name)
		}
		for _, ex := range c.Examples {
			words := strings.Fields(ex)
			for len(words) > 0 && strings.HasPrefix(words[0], "-") {
				if words[0] == "-o" || words[0] == "--timeout" {
					words = words[1:]
				}
				words = words[1:]
			}
			if strings.Contains(ex, "…") {
				continue
			}
			if _, err := reg.Parse(words); err != nil {
				t.Errorf("%s: example %q does not parse: %v", c.Name, ex, err)
			}
		}
		for _, k := range c.Keys {
			if k.Help == "" {
				t.Errorf("%s: key %s has no help", c.Name, k.Name)
			}
		}
	}
	for _, want := range []string{"cluster.get", "host.list", "host.get", "host.list_vms", "vm.list", "vm.get", "vm.create",
		"vm.update", "vm.delete", "vm.on", "vm.off", "vm.shutdown", "vm.reboot", "vm.reset", "vm.disk_create", "vm.disk_list",
		"vm.disk_delete", "vm.nic_create", "vm.nic_list", "vm.nic_delete", "net.create", "net.list", "net.get", "net.delete",
		"task.list", "task.get", "task.wait"} {
		if _, ok := reg.Lookup(want); !ok {
			t.Errorf("missing command %s", want)
		}
	}
	_, err := NewRegistry(&Namespace{Name: "x", Commands: func() []*Command {
		return []*Command{{Name: "x.a", Run: runClusterGet}, {Name: "x.a", Run: runClusterGet}}
	}})
	if err == nil {
		t.Error("duplicate commands must be refused")
	}
}
