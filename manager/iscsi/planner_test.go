package iscsi

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const ext = "iqn.2024-01.com.example:db1"

func cvms(n int) []CVM {
	var out []CVM
	for i := 1; i <= n; i++ {
		out = append(out, CVM{IP: fmt.Sprintf("127.20.0.%d", 30+i), HostUUID: fmt.Sprintf("host-%d", i)})
	}
	return out
}

func disks(initiator, vg string, n int, mod func(*Attachment)) []Attachment {
	var out []Attachment
	for d := 0; d < n; d++ {
		a := Attachment{Key: Key{Initiator: initiator, VG: vg, Disk: d}}
		if mod != nil {
			mod(&a)
		}
		out = append(out, a)
	}
	return out
}

func mustAssign(t *testing.T, c []CVM, s []Session, a []Attachment) []Session {
	t.Helper()
	added, err := Assign(c, s, a)
	if err != nil {
		t.Fatal(err)
	}
	return append(s, added...)
}

func servers(s []Session) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.CVM)
	}
	return out
}

func TestAssignSpreadsVGDisksOnePerCVM(t *testing.T) {
	c := cvms(3)
	// Another VG already has sessions on .31 and .32: the new VG still gets
	// one session per CVM, the existing load only decides the order.
	other := mustAssign(t, c, nil, disks("iqn.2024-01.com.example:other", "vg-0", 2, nil))
	s := mustAssign(t, c, other, disks(ext, "vg-1", 3, nil))
	got := servers(s[2:])
	if want := []string{"127.20.0.33", "127.20.0.31", "127.20.0.32"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("servers %v, want %v", got, want)
	}
	for _, x := range s {
		if x.Preferred != x.CVM {
			t.Errorf("%s: preferred %s, serving %s", x.Key, x.Preferred, x.CVM)
		}
	}
	// Already-attached disks get no second session.
	if again, err := Assign(c, s, disks(ext, "vg-1", 3, nil)); err != nil || len(again) != 0 {
		t.Fatalf("re-assign created %v, %v", again, err)
	}
	if err := Check(c, append(disks("iqn.2024-01.com.example:other", "vg-0", 2, nil), disks(ext, "vg-1", 3, nil)...), s); err != nil {
		t.Fatal(err)
	}
}

func TestAssignVMAttachmentsPreferLocalCVM(t *testing.T) {
	c := cvms(3)
	vm := "iqn.2010-06.com.nutanix:vm-web"
	local := func(a *Attachment) { a.VMHost = "host-2" }
	s := mustAssign(t, c, nil, disks(vm, "vg-1", 3, local))
	if got := servers(s); !reflect.DeepEqual(got, []string{"127.20.0.32", "127.20.0.32", "127.20.0.32"}) {
		t.Fatalf("local: %v", got)
	}
	// load_balance spreads them.
	spread := func(a *Attachment) { a.VMHost = "host-2"; a.LoadBalance = true }
	s = mustAssign(t, c, nil, disks(vm, "vg-1", 3, spread))
	if got := servers(s); !reflect.DeepEqual(got, []string{"127.20.0.31", "127.20.0.32", "127.20.0.33"}) {
		t.Fatalf("load balanced: %v", got)
	}
	// Local CVM down at attach time: served elsewhere, still prefers local.
	c[1].State = CVMDown
	s = mustAssign(t, c, nil, disks(vm, "vg-1", 2, local))
	for _, x := range s {
		if x.CVM == "127.20.0.32" || x.Preferred != "127.20.0.32" {
			t.Fatalf("local down: %+v", x)
		}
	}
	// Recovery brings them home.
	c[1].State = CVMUp
	p, err := Failback(c, s)
	if err != nil || len(p.Moves) != 2 || p.Moves[0].To != "127.20.0.32" {
		t.Fatalf("failback %+v %v", p, err)
	}
}

func TestAssignWithNoCVMUp(t *testing.T) {
	c := cvms(2)
	c[0].State, c[1].State = CVMDown, CVMMaintenance
	if _, err := Assign(c, nil, disks(ext, "vg", 1, nil)); err == nil || !strings.Contains(err.Error(), "no CVM is up") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Assign([]CVM{{IP: "a"}, {IP: "a"}}, nil, nil); err == nil {
		t.Fatal("duplicate CVM IP accepted")
	}
}

// The operator's scenario: 3 disks on 3 CVMs, fail the first, recover it.
func TestFailoverAndFailbackScenario(t *testing.T) {
	c := cvms(3)
	atts := disks(ext, "vg-1", 3, nil)
	s := mustAssign(t, c, nil, atts)
	c[0].State = CVMDown
	p, err := Failover(c, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Moves) != 1 || p.Moves[0].String() != "session iqn.2024-01.com.example:db1/0 moved 127.20.0.31 -> 127.20.0.32" {
		t.Fatalf("moves %v", p.Moves)
	}
	s = Apply(s, p.Moves)
	if err := Check(c, atts, s); err != nil {
		t.Fatal(err)
	}
	if n := Load(s)["127.20.0.31"]; n != 0 {
		t.Fatalf("%d sessions left on the failed CVM", n)
	}
	// Failover on a healthy layout moves nothing.
	if p, _ := Failover(c, s); len(p.Moves) != 0 {
		t.Fatalf("spurious moves %v", p.Moves)
	}
	c[0].State = CVMUp
	p, err = Reconcile(c, s, true)
	if err != nil || len(p.Moves) != 1 || p.Moves[0].To != "127.20.0.31" {
		t.Fatalf("failback %+v %v", p, err)
	}
	if s = Apply(s, p.Moves); !reflect.DeepEqual(servers(s), []string{"127.20.0.31", "127.20.0.32", "127.20.0.33"}) {
		t.Fatalf("after failback %v", servers(s))
	}
}

func TestFailoverLeastLoadedFirst(t *testing.T) {
	c := cvms(3)
	s := []Session{
		{Key: Key{ext, "vg", 0}, CVM: "127.20.0.31"},
		{Key: Key{ext, "vg", 1}, CVM: "127.20.0.31"},
		{Key: Key{ext, "vg", 2}, CVM: "127.20.0.31"},
		{Key: Key{ext, "vg", 3}, CVM: "127.20.0.32"},
		{Key: Key{ext, "vg", 4}, CVM: "127.20.0.32"},
	}
	c[0].State = CVMMaintenance
	p, _ := Failover(c, s)
	var to []string
	for _, m := range p.Moves {
		to = append(to, m.To)
	}
	// .33 is empty: it takes two before .32 (two sessions) ties, then .32 wins on IP.
	if want := []string{"127.20.0.33", "127.20.0.33", "127.20.0.32"}; !reflect.DeepEqual(to, want) {
		t.Fatalf("targets %v, want %v", to, want)
	}
}

func TestAllCVMsDownReportsSessionsDown(t *testing.T) {
	c := cvms(2)
	atts := disks(ext, "vg", 2, nil)
	s := mustAssign(t, c, nil, atts)
	c[0].State, c[1].State = CVMDown, CVMDown
	p, err := Reconcile(c, s, true)
	if err != nil || len(p.Moves) != 0 || len(p.Down) != 2 || !Down(c) {
		t.Fatalf("%+v %v", p, err)
	}
	if err := Check(c, atts, s); err != nil {
		t.Fatalf("all down is a valid (reported) state: %v", err)
	}
	// One CVM back: everything lands on it.
	c[1].State = CVMUp
	p, _ = Reconcile(c, s, true)
	s = Apply(s, p.Moves)
	if err := Check(c, atts, s); err != nil || Load(s)["127.20.0.32"] != 2 {
		t.Fatalf("after recovery: %v %v", Load(s), err)
	}
}

func TestCheckFindsEveryViolation(t *testing.T) {
	c := cvms(2)
	c[0].State = CVMDown
	atts := disks(ext, "vg", 3, nil)
	s := []Session{
		{Key: Key{ext, "vg", 0}, CVM: "127.20.0.31"},
		{Key: Key{ext, "vg", 1}, CVM: "127.20.0.32"},
		{Key: Key{ext, "vg", 1}, CVM: "127.20.0.32"},
		{Key: Key{ext, "vg", 9}, CVM: "127.20.0.32"},
		{Key: Key{ext, "vg", 0}, CVM: "10.0.0.1"},
	}
	err := Check(c, atts, s)
	var ie *InvariantError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		"session iqn.2024-01.com.example:db1/0 is on CVM 127.20.0.31, which is kCvmDown, while other CVMs are up",
		`session iqn.2024-01.com.example:db1/0 is on unknown CVM "10.0.0.1"`,
		"attachment iqn.2024-01.com.example:db1/0 of vg vg has 2 sessions",
		"attachment iqn.2024-01.com.example:db1/1 of vg vg has 2 sessions",
		"attachment iqn.2024-01.com.example:db1/2 of vg vg has no session",
		"session iqn.2024-01.com.example:db1/9 of vg vg has no attachment",
	}
	if !reflect.DeepEqual(ie.Problems, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(ie.Problems, "\n"), strings.Join(want, "\n"))
	}
}
