package ha

import (
	"context"
	"errors"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

// offOnly is a driver that can only power VMs off; Fence calls nothing else.
type offOnly struct {
	driver.Driver
	off error
}

func (d offOnly) PowerOff(context.Context, *acliv1.Host, *acliv1.Vm) error { return d.off }

type hostFencer struct {
	offOnly
	err error
}

func (d hostFencer) FenceHost(context.Context, *acliv1.Host) error { return d.err }

type vmFencer struct {
	hostFencer
	err error
}

func (d vmFencer) FenceVm(context.Context, *acliv1.Host, *acliv1.Vm) error { return d.err }

// answers is a driver whose host answers again: powering off there would
// succeed, and stop a VM that runs.
type answers struct{ offOnly }

func (answers) Answers(*acliv1.Host) bool { return true }

func TestFence(t *testing.T) {
	h, vm := &acliv1.Host{Name: "h1"}, &acliv1.Vm{Name: "v"}
	unreachable := errors.New("unreachable")
	for _, c := range []struct {
		name string
		drv  driver.Driver
		want string
	}{
		{"powered off", offOnly{}, ""},
		{"host answers again", answers{}, "host h1 answers again, so its VMs stay there"},
		{"no fencer", offOnly{off: unreachable}, "power-off: unreachable"},
		{"host fenced", hostFencer{offOnly{off: unreachable}, nil}, ""},
		{"storage fenced", vmFencer{hostFencer{offOnly{off: unreachable}, errors.New("agent failed")}, nil}, ""},
		{"nothing fenced", vmFencer{hostFencer{offOnly{off: unreachable}, errors.New("agent failed")}, errors.New("sessions open")},
			"power-off: unreachable; host: agent failed; storage: sessions open"},
	} {
		err := Fence(context.Background(), c.drv, h, vm)
		if got := ""; err != nil {
			got = err.Error()
			if got != c.want {
				t.Errorf("%s: %q, want %q", c.name, got, c.want)
			}
		} else if c.want != "" {
			t.Errorf("%s: fenced, want %q", c.name, c.want)
		}
	}
}
