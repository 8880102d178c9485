package manager_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/driver/libvirt"
	"github.com/acli-dev/acli/manager/driver/libvirt/libvirtharness"
)

// guestRecord is sector n of the test guest's data disk: "REC seq=n
// up=<uptime> boot=<id>" (libvirtharness.Guest).
type guestRecord struct {
	seq  int
	boot string
}

// guestRecords reads the records at the start of a data disk, up to the
// first sector that holds none.
func guestRecords(t testing.TB, path string) []guestRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []guestRecord
	for i := 1; (i+1)*512 <= len(b); i++ {
		f := strings.Fields(string(bytes.TrimRight(b[i*512:(i+1)*512], "\x00")))
		if len(f) != 4 || f[0] != "REC" {
			return out
		}
		seq, err := strconv.Atoi(strings.TrimPrefix(f[1], "seq="))
		if err != nil || seq != i {
			t.Fatalf("sector %d holds %q", i, f[1])
		}
		out = append(out, guestRecord{seq: seq, boot: f[3]})
	}
	return out
}

// hostEvents lists the cluster's host and HA events, oldest first: why a
// host was marked down.
func hostEvents(t testing.TB, c clients) string {
	t.Helper()
	var out []string
	for _, typ := range []string{"host", "ha"} {
		evs, err := c.ev.ListEvents(bg, &acliv1.ListEventsRequest{Type: typ})
		if err != nil {
			return err.Error()
		}
		for _, e := range evs.Events {
			out = append(out, e.Type+": "+e.Message)
		}
	}
	return "events:\n" + strings.Join(out, "\n")
}

// HA with disks attached: the test guest boots on h3 from a vDisk cloned
// from an image and writes its fsync'd counter to a second vDisk. h3's
// libvirtd dies; HA fences the host (its QEMUs die with it) and restarts
// the VM on another host with the same vDisks: the domain there uses the
// same volumes, the guest boots again from the cloned disk and writes the
// same data disk, and every record written before the failure is intact.
func TestLibvirtHostFailureHAWithDisks(t *testing.T) {
	storage := t.TempDir()
	st := libvirt.Storage{Dir: storage}
	var cluster atomic.Pointer[lvCluster]
	var data atomic.Pointer[string]
	var killed atomic.Bool
	// The records as the fence of the killed host left them: its writer is
	// dead, and HA restarts nothing before the fence returns. A fence of any
	// host before the kill (one marked down while it ran) is reported
	// apart: it is not the failure this test makes.
	fenced := make(chan []guestRecord, 1)
	early := make(chan string, 3)
	lc := startLibvirt(t, 3, libvirt.Config{Storage: st,
		FenceHost: func(ctx context.Context, h *acliv1.Host) error {
			if err := cluster.Load().host(h.Name).PowerOff(); err != nil {
				return err
			}
			if !killed.Load() || h.Name != cluster.Load().hosts.Hosts[2].Name {
				select {
				case early <- fmt.Sprintf("%s (killed: %v)", h.Name, killed.Load()):
				default:
				}
				return nil
			}
			select {
			case fenced <- guestRecords(t, *data.Load()):
			default:
			}
			return nil
		}})
	cluster.Store(lc)
	c := lc.c
	g := libvirtharness.GuestT(t)
	l, err := net.Listen("tcp", "127.45.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Dir(g.Qcow2)))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	images := acliv1.NewImageServiceClient(lc.h.Conn)
	await(t, c)(images.CreateImage(bg, &acliv1.CreateImageRequest{Name: "guest", SourceUrl: "http://" + l.Addr().String() + "/disk.qcow2", ImageType: acliv1.ImageType_kDiskImage}))
	await(t, c)(c.vm.CreateVm(bg, &acliv1.CreateVmRequest{Name: "ha-disks", MemoryBytes: 128 << 20, NumVcpus: 1}))
	await(t, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "ha-disks", CloneFromImage: "guest"}))
	await(t, c)(c.vm.CreateDisk(bg, &acliv1.CreateDiskRequest{Vm: "ha-disks", SizeBytes: 64 << 20}))
	h3 := lc.hosts.Hosts[2]
	await(t, c)(c.vm.SetPowerState(bg, &acliv1.SetPowerStateRequest{Vm: "ha-disks", Transition: acliv1.PowerTransition_kPowerOn, Host: h3.Name}))
	vm := lc.runsOn(t, "ha-disks", h3.Name)
	if len(vm.Disks) != 2 {
		t.Fatalf("vm disks %v, want the clone and the data disk", vm.Disks)
	}
	dataPath := st.VolumePath(vm.Disks[1].Container, vm.Disks[1].Uuid)
	data.Store(&dataPath)

	// 50 records (5 s of writes) before the failure, so the restarted
	// guest cannot overwrite them all before they are checked.
	eventually(t, 4*time.Minute, "the guest's records on its data disk", func() bool { return len(guestRecords(t, dataPath)) >= 50 })
	first := guestRecords(t, dataPath)[0].boot
	select {
	case h := <-early:
		t.Fatalf("host %s was fenced before the test killed %s: %s", h, h3.Name, hostEvents(t, c))
	default:
	}
	killed.Store(true)
	if err := h3.Kill(); err != nil {
		t.Fatal(err)
	}
	// The limit only guards against a hung test: under load 45 all three
	// hosts' connections dropped at once around the kill (probes unanswered
	// within 2 s: this process starved), the monitor rightly suspected
	// itself (3 of 3 silent), and h3 was marked down alone only later.
	var before []guestRecord
	select {
	case before = <-fenced:
	case h := <-early:
		t.Fatalf("host %s was fenced, not only the killed %s: %s", h, h3.Name, hostEvents(t, c))
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s was not fenced: %s", h3.Name, hostEvents(t, c))
	}
	if len(before) < 50 || before[0].boot != first {
		t.Fatalf("records when fenced: %d from boot %v, want 50 or more from boot %s", len(before), before[:min(1, len(before))], first)
	}
	if final := haTask(t, lc.c, h3.Name); final.Status != acliv1.TaskStatus_kSucceeded {
		t.Fatalf("HA task %v: %s", final.Status, final.Error)
	}
	power, host := lc.vmState(t, "ha-disks")
	if power != acliv1.PowerState_kOn || host == h3.Name || host == "" {
		t.Fatalf("ha-disks after HA: %s on %q", power, host)
	}
	after := lc.runsOn(t, "ha-disks", host)
	for i, d := range after.Disks {
		if d.Uuid != vm.Disks[i].Uuid || d.SizeBytes != vm.Disks[i].SizeBytes {
			t.Fatalf("disk %d after HA: %v, was %v", i, d, vm.Disks[i])
		}
	}
	l2 := lc.conn[host].Raw()
	dom, err := l2.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.Uuid)))
	if err != nil {
		t.Fatal(err)
	}
	x, err := l2.DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range vm.Disks {
		if p := st.VolumePath(d.Container, d.Uuid); !strings.Contains(x, p) {
			t.Fatalf("the domain on %s does not use volume %s:\n%s", host, p, x)
		}
	}

	// The guest boots again from its cloned disk and writes the same data
	// disk from sector 1; what it has not overwritten yet is as it was.
	var now []guestRecord
	eventually(t, 4*time.Minute, "the restarted guest's records", func() bool {
		now = guestRecords(t, dataPath)
		return len(now) > 0 && now[0].boot != first
	})
	n := 0
	for n < len(now) && now[n].boot != first {
		n++
	}
	if n >= len(before) {
		t.Fatalf("the restarted guest wrote %d records before the check, more than the %d written before the failure", n, len(before))
	}
	for i := n; i < len(before); i++ {
		if i >= len(now) || now[i] != before[i] {
			t.Fatalf("record %d before the failure %v, after HA %v", i+1, before[i], now[min(i, len(now)-1)])
		}
	}
	if con, _ := os.ReadFile(st.ConsolePath(vm.Uuid)); bytes.Contains(con, []byte("WRERR")) || bytes.Contains(con, []byte("I/O error")) {
		t.Fatalf("the guest saw write errors:\n%s", con)
	}
	t.Logf("HA restarted the guest on %s with its 2 vDisks; %d records from before the failure, %d of them still unwritten by the new boot and intact", host, len(before), len(before)-n)
}
