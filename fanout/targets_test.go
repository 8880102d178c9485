package fanout

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func hostsOf(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

func TestParseTargets(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"a,b, c", []string{"a", "b", "c"}},
		{"10.0.0.[1-3]", []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		{"node[01-03]", []string{"node01", "node02", "node03"}},
		{"node[8-10]", []string{"node8", "node9", "node10"}},
		{"node[098-100]", []string{"node098", "node099", "node100"}},
		{"10.0.0.[1-2,7]:2222", []string{"10.0.0.1:2222", "10.0.0.2:2222", "10.0.0.7:2222"}},
		{"r[1-2]n[1..2]", []string{"r1n1", "r1n2", "r2n1", "r2n2"}},
		{"[::1]:2222,[fe80::1],::1", []string{"[::1]:2222", "fe80::1", "::1"}},
		{"h:22,,", []string{"h:22"}},
	} {
		got, err := ParseTargets(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(hostsOf(got), tc.want) {
			t.Errorf("%q = %v, want %v", tc.in, hostsOf(got), tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"node[1-]", `bad host range "node[1-]"`},
		{"node[3-1]", "3 is after 1 (write [1-3])"},
		{"node[1-3", "missing ']'"},
		{"node]", "']' without '['"},
		{"h:99999", "bad port"},
		{"h:x", "bad port"},
		{"n[0-70000]", "more than 65536"},
		{"[1-300][1-300]", "more than 65536"},
	} {
		_, err := ParseTargets(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestReadTargetsAndExclude(t *testing.T) {
	file := "# rack 1\n10.0.0.[1-4]\n\n10.0.0.9:2222  # spare\nnode01 node02\n10.0.0.1\n"
	ts, err := ReadTargets(strings.NewReader(file), "hosts")
	if err != nil {
		t.Fatal(err)
	}
	ts = Dedup(ts)
	want := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.9:2222", "node01", "node02"}
	if !reflect.DeepEqual(hostsOf(ts), want) {
		t.Fatalf("got %v, want %v", hostsOf(ts), want)
	}
	ts, err = Exclude(ts, "10.0.0.[2-3],node*,10.0.0.9:22")
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"10.0.0.1", "10.0.0.4", "10.0.0.9:2222"}
	if !reflect.DeepEqual(hostsOf(ts), want) {
		t.Errorf("after exclude %v, want %v", hostsOf(ts), want)
	}
	if _, err := ReadTargets(strings.NewReader("ok\nbad[\n"), "hosts"); err == nil || !strings.HasPrefix(err.Error(), "hosts:2: ") {
		t.Errorf("bad line error %v", err)
	}
}

func TestFoldHosts(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.7"}, "10.0.0.[1-3,7]"},
		{[]string{"node01", "node02", "db", "node04"}, "node[01-02,04],db"},
		{[]string{"h1"}, "h1"},
		{[]string{"a", "b"}, "a,b"},
	} {
		if got := FoldHosts(tc.in); got != tc.want {
			t.Errorf("FoldHosts(%v) = %q, want %q", tc.in, got, tc.want)
		}
		// The folded form must parse back to the same hosts.
		back, err := ParseTargets(FoldHosts(tc.in))
		if err != nil || len(back) != len(tc.in) {
			t.Errorf("%q does not round-trip: %v %v", FoldHosts(tc.in), hostsOf(back), err)
		}
	}
}

func TestSSHConfigLookup(t *testing.T) {
	cfg := `User everyone
# comment
Host db* !db9
  Port 2200
  IdentityFile ~/.ssh/db_key
Host *
  User fallback
  Port 22
  IdentityFile=/keys/all
Match host foo
  User ignored
Host db1
  HostName %h.example.com
  HostName second.example.com
`
	c, err := ParseSSHConfig(strings.NewReader(cfg), "config", "/home/u")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Lookup("db1")
	want := HostConfig{User: "everyone", Port: 2200, HostName: "db1.example.com", IdentityFiles: []string{"/home/u/.ssh/db_key", "/keys/all"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("db1: %+v, want %+v", got, want)
	}
	if got := c.Lookup("db9"); got.Port != 22 || len(got.IdentityFiles) != 1 {
		t.Errorf("negated pattern: %+v", got)
	}
	if _, err := ParseSSHConfig(strings.NewReader("Port abc\n"), "cfg", ""); err == nil || !strings.Contains(err.Error(), "cfg:1: bad Port") {
		t.Errorf("bad port error %v", err)
	}
}

func TestLocalLast(t *testing.T) {
	ts, _ := ParseTargets("10.0.0.[1-4]")
	got := hostsOf(LocalLast(ts, func(h string) bool { return h == "10.0.0.2" }))
	if want := []string{"10.0.0.1", "10.0.0.3", "10.0.0.4", "10.0.0.2"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if !IsLocalAddress("127.0.0.1") || IsLocalAddress("127.20.0.31") || IsLocalAddress("node1") {
		t.Error("IsLocalAddress: want exact interface address matches only")
	}
}
