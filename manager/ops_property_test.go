package manager_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
)

// outHosts counts the hosts out of service (node or CVM).
func outHosts(t *testing.T, c clients) int {
	t.Helper()
	hosts, _ := c.host.ListHosts(bg, &acliv1.ListHostsRequest{})
	n := 0
	for _, h := range hosts.Hosts {
		if h.NodeState != acliv1.NodeState_AcropolisNormal || h.CvmState != acliv1.CvmState_kCvmUp {
			n++
		}
	}
	return n
}

// settle waits until no task runs (HA and evacuations are asynchronous).
func settle(t *testing.T, c clients) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		running, _ := c.task.ListTasks(bg, &acliv1.ListTasksRequest{})
		if len(running.Tasks) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks still running: %v", running.Tasks)
		}
		for _, task := range running.Tasks {
			wait(t, c, task, nil)
		}
	}
}

// TestPropertyRandomOpsKeepInvariants runs random sequences of power
// operations, migrations, host and CVM maintenance, host failures and
// recoveries. After each step: memory is never over-committed, each running
// VM runs on exactly the host it is recorded on, and no maintenance the
// manager accepts takes more than RF-1 hosts out.
func TestPropertyRandomOpsKeepInvariants(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			cfg := sim.ForHosts(4)
			cfg.MemoryGiB = 64
			h := managertest.New(t, managertest.Options{Sim: &cfg})
			c := newClients(h.Conn)
			rng := rand.New(rand.NewPCG(seed, 42))
			hosts := []string{"h1", "h2", "h3", "h4"}
			var vms []string
			for i := 0; i < 14; i++ {
				n := fmt.Sprintf("v%02d", i)
				createVm(t, c, n, int64(2+rng.IntN(12))*gib)
				vms = append(vms, n)
			}
			accepted := map[string]int{}
			for step := 0; step < 80; step++ {
				vm, host := vms[rng.IntN(len(vms))], hosts[rng.IntN(len(hosts))]
				outBefore := outHosts(t, c)
				var task *acliv1.Task
				var err error
				op := rng.IntN(10)
				switch op {
				case 0, 1:
					task, err = power(c, vm, acliv1.PowerTransition_kPowerOn)
				case 2:
					task, err = power(c, vm, acliv1.PowerTransition_kPowerOff)
				case 3, 4:
					task, err = c.vm.MigrateVm(bg, &acliv1.MigrateVmRequest{Vm: vm})
				case 5:
					task, err = enter(c, host, acliv1.NonMigratableVmAction(1+rng.IntN(2)))
				case 6:
					task, err = c.host.ExitMaintenanceMode(bg, &acliv1.ExitMaintenanceModeRequest{Host: host})
				case 7:
					task, err = c.host.EnterCvmMaintenanceMode(bg, &acliv1.CvmMaintenanceRequest{Host: host})
				case 8:
					task, err = c.host.ExitCvmMaintenanceMode(bg, &acliv1.CvmMaintenanceRequest{Host: host})
				case 9:
					if rng.IntN(2) == 0 {
						_, err = c.sim.FailHost(bg, &acliv1.SimHostRequest{Host: host})
					} else {
						_, err = c.sim.RecoverHost(bg, &acliv1.SimHostRequest{Host: host})
					}
				}
				if err != nil {
					// Refusals are fine; anything else is a bug.
					switch status.Code(err) {
					case codes.FailedPrecondition, codes.Aborted:
					default:
						t.Fatalf("step %d op %d: %v", step, op, err)
					}
				} else if task != nil {
					final := wait(t, c, task, nil)
					if final.Status == acliv1.TaskStatus_kSucceeded && (op == 5 || op == 7) {
						// Accepted while RF-1 hosts were already out: the budget is broken.
						if outBefore >= 1 && outHosts(t, c) > outBefore {
							t.Fatalf("step %d: %s accepted with %d host(s) already out", step, final.Operation, outBefore)
						}
					}
					accepted[final.Status.String()]++
				}
				settle(t, c)
				checkInvariants(t, h)
			}
			t.Logf("tasks: %v", accepted)
		})
	}
}
