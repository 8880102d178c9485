package ha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver"
)

// FenceTimeout bounds one attempt to fence a VM on its down host.
const FenceTimeout = 10 * time.Second

// Fence proves that the copy of vm on the down host can no longer run or
// write to its vDisks: powered off there (the driver's PowerOff, which
// succeeds when the VM is already gone), the host proven dead (a
// driver.HostFencer), or its storage cut off (a driver.VmFencer: the data
// path refusing the host's sessions). It returns why none did. A host
// that answers again is not fenced at all (driver.Reacher): powering off
// there would stop a VM that runs, on a host that is back.
func Fence(ctx context.Context, drv driver.Driver, down *acliv1.Host, vm *acliv1.Vm) error {
	if r, ok := drv.(driver.Reacher); ok && r.Answers(down) {
		return fmt.Errorf("host %s answers again, so its VMs stay there", down.Name)
	}
	fctx, cancel := context.WithTimeout(ctx, FenceTimeout)
	defer cancel()
	err := drv.PowerOff(fctx, down, vm)
	if err == nil {
		return nil
	}
	why := []string{"power-off: " + err.Error()}
	if f, ok := drv.(driver.HostFencer); ok {
		err := f.FenceHost(fctx, down)
		if err == nil {
			return nil
		}
		why = append(why, "host: "+err.Error())
	}
	if f, ok := drv.(driver.VmFencer); ok {
		err := f.FenceVm(fctx, down, vm)
		if err == nil {
			return nil
		}
		why = append(why, "storage: "+err.Error())
	}
	return errors.New(strings.Join(why, "; "))
}
