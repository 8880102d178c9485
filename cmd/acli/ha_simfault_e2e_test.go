package main

import (
	"testing"
	"time"
)

// TestHASimFaultsSurviveLeaderChange: a host and a CVM failed with sim.*
// stay failed when the leader is killed: the next leader's sim starts them
// from the stored model, its heartbeat monitor does not bring them back,
// and sim.recover_* on the new leader returns them.
func TestHASimFaultsSurviveLeaderChange(t *testing.T) {
	c := startHA(t, "--sim-speed", "100")
	srv := c.servers()
	want(t, srv, 0, "vm.create f[1..2] memory=1G")
	want(t, srv, 0, "vm.on f1 host=h1")
	want(t, srv, 0, "sim.fail_host h2")
	want(t, srv, 0, "sim.fail_cvm h3")

	old := c.leader(t, nil)
	if err := old.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-old.done
	next := c.leader(t, old)
	addr, _ := next.state()
	// Several heartbeat timeouts of the new term pass.
	time.Sleep(3 * time.Second)
	states := func() map[string]hostJSON {
		var hosts []hostJSON
		data(t, addr, &hosts, "host.list")
		out := map[string]hostJSON{}
		for _, h := range hosts {
			out[h.Name] = h
		}
		return out
	}
	hs := states()
	if hs["h2"].NodeState != "kNodeDown" || hs["h3"].NodeState != "AcropolisNormal" || hs["h3"].CvmState != "kCvmDown" ||
		hs["h1"].NodeState != "AcropolisNormal" || hs["h1"].CvmState != "kCvmUp" {
		t.Fatalf("hosts after the leader change: %+v", hs)
	}
	var vms []vmJSON
	data(t, addr, &vms, "vm.list")
	for _, v := range vms {
		if v.Name == "f1" && (v.PowerState != "kOn" || v.HostName != "h1") {
			t.Fatalf("f1 after the leader change: %+v", v)
		}
	}
	want(t, srv, 0, "sim.recover_host h2")
	want(t, srv, 0, "sim.recover_cvm h3")
	hs = states()
	if hs["h2"].NodeState != "AcropolisNormal" || hs["h3"].CvmState != "kCvmUp" {
		t.Fatalf("hosts after recovery on the new leader: %+v", hs)
	}
}
