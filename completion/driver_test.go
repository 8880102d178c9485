package completion

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acli-dev/acli/commands"
)

// The sim namespace is offered only once clusterd is known to run the sim
// driver; other namespaces never depend on it.
func TestCompleterHidesOtherDriversNamespaces(t *testing.T) {
	driver := ""
	c := &Completer{Registry: commands.Default(), Names: names, Driver: func() string { return driver }}
	cases := []struct{ driver, line, want string }{
		{"", "", "[ads. audit. cluster. container. cvm. event. ha. host. image. net. snapshot. task. token. vg. vm. vm_group.]"},
		{"libvirt", "", "[ads. audit. cluster. container. cvm. event. ha. host. image. net. snapshot. task. token. vg. vm. vm_group.]"},
		{"libvirt", "s", "[snapshot.]"},
		{"libvirt", "sim.", "[]"},
		{"libvirt", "sim.fail", "[]"},
		{"sim", "", "[ads. audit. cluster. container. cvm. event. ha. host. image. net. sim. snapshot. task. token. vg. vm. vm_group.]"},
		{"sim", "s", "[sim. snapshot.]"},
		{"sim", "sim.", "[sim.fail_cvm sim.fail_host sim.recover_cvm sim.recover_host sim.set_dirty_rate]"},
		{"libvirt", "vm.mi", "[vm.migrate]"},
		{"libvirt", "cvm.", "[cvm.enter_maintenance_mode cvm.exit_maintenance_mode]"},
	}
	for _, tc := range cases {
		driver = tc.driver
		got, _ := c.Complete(tc.line)
		if texts(got) != tc.want {
			t.Errorf("driver %q, %q: got %s, want %s", tc.driver, tc.line, texts(got), tc.want)
		}
	}
	// Arguments of a typed sim command still complete (the line runs and
	// says what is wrong if the driver is not sim).
	driver = "libvirt"
	if got, _ := c.Complete("sim.fail_host node"); texts(got) != "[node-1]" {
		t.Errorf("arguments: %s", texts(got))
	}
}

func TestDriverProbe(t *testing.T) {
	var calls atomic.Int32
	answer, fail := "sim", false
	release := make(chan struct{}, 4)
	p := NewDriverProbe(func(context.Context) (string, error) {
		calls.Add(1)
		<-release
		if fail {
			return "", errors.New("cannot reach clusterd")
		}
		return answer, nil
	}, time.Hour)
	now := time.Unix(0, 0)
	p.now = func() time.Time { return now }
	if d := p.Driver(); d != "" {
		t.Fatalf("unknown before the first answer, got %q", d)
	}
	p.Driver() // a second keystroke: no second fetch
	release <- struct{}{}
	p.Wait()
	if d := p.Driver(); d != "sim" || calls.Load() != 1 {
		t.Fatalf("driver %q after %d fetches", d, calls.Load())
	}
	// Stale and clusterd gone: keep the last answer.
	now, fail = now.Add(2*time.Hour), true
	p.Driver()
	release <- struct{}{}
	p.Wait()
	if d := p.Driver(); d != "sim" || calls.Load() != 2 {
		t.Fatalf("driver %q after %d fetches", d, calls.Load())
	}
	// Another clusterd behind the same address: the new answer.
	now, fail, answer = now.Add(2*time.Hour), false, "libvirt"
	p.Driver()
	release <- struct{}{}
	p.Wait()
	if d := p.Driver(); d != "libvirt" {
		t.Fatalf("driver %q", d)
	}
}
