package manager_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/managertest"
	"github.com/acli-dev/acli/manager/store/etcd"
	"github.com/acli-dev/acli/manager/store/etcd/etcdtest"
)

var benchNS atomic.Int64

// BenchmarkCreateVmEtcd is BenchmarkCreateVm on a 3-member etcd cluster on
// loopback, through the elected leader's fenced store: each create is one
// etcd transaction (VM, task, and the leadership compare), replicated to a
// quorum before it is acknowledged.
func BenchmarkCreateVmEtcd(b *testing.B) {
	c := etcdtest.Start(b, 3)
	ctx := context.Background()
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			es, err := etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), Namespace: fmt.Sprintf("/bench/%d", benchNS.Add(1))})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { es.Close() })
			el, err := es.NewElector(ctx, 2*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			if err := el.Campaign(ctx, "bench"); err != nil {
				b.Fatal(err)
			}
			conn, _ := managertest.Start(b, managertest.Options{Hosts: 3, Store: el.Store()})
			vms := acliv1.NewVmServiceClient(conn)
			b.ResetTimer()
			el2 := createMany(b, vms, b.N, clients, "bench")
			b.ReportMetric(float64(b.N)/el2.Seconds(), "tasks/s")
		})
	}
}
