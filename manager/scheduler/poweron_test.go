package scheduler

import (
	"net/netip"
	"testing"
)

const gibibyte = int64(1) << 30

func candidates() []Candidate {
	return []Candidate{
		{UUID: "a", Name: "h1", IP: netip.MustParseAddr("127.20.0.21"), MemoryBytes: 256 * gibibyte, MemoryUsedBytes: 100 * gibibyte, NumVms: 3},
		{UUID: "b", Name: "h2", IP: netip.MustParseAddr("127.20.0.22"), MemoryBytes: 256 * gibibyte, MemoryUsedBytes: 50 * gibibyte, NumVms: 5},
		{UUID: "c", Name: "h3", IP: netip.MustParseAddr("127.20.0.23"), MemoryBytes: 256 * gibibyte, MemoryUsedBytes: 50 * gibibyte, NumVms: 2},
	}
}

func TestMostFreeMemoryThenFewestVmsThenIP(t *testing.T) {
	hs := candidates()
	if got, _ := MostFreeMemory(hs, PlaceRequest{MemoryBytes: gibibyte}); got != "c" {
		t.Fatalf("picked %s, want c (tie on memory, fewer VMs)", got)
	}
	hs[2].NumVms = 5
	if got, _ := MostFreeMemory(hs, PlaceRequest{MemoryBytes: gibibyte}); got != "b" {
		t.Fatalf("picked %s, want b (tie on memory and VMs, lower IP)", got)
	}
	// Deterministic regardless of input order.
	rev := []Candidate{hs[2], hs[1], hs[0]}
	if got, _ := MostFreeMemory(rev, PlaceRequest{MemoryBytes: gibibyte}); got != "b" {
		t.Fatalf("order-dependent: picked %s", got)
	}
}

func TestSkipsUnavailableAndAffinity(t *testing.T) {
	hs := candidates()
	hs[1].Unavailable = "host is down"
	hs[2].Unavailable = "host is not schedulable: firmware"
	if got, _ := MostFreeMemory(hs, PlaceRequest{MemoryBytes: gibibyte}); got != "a" {
		t.Fatalf("picked %s, want a", got)
	}
	hs = candidates()
	if got, _ := MostFreeMemory(hs, PlaceRequest{MemoryBytes: gibibyte, Affinity: []string{"a"}}); got != "a" {
		t.Fatalf("affinity ignored: picked %s", got)
	}
}

func TestFitsNowhereNamesShortfallPerHost(t *testing.T) {
	hs := candidates()
	hs[1].Unavailable = "host is down"
	got, rej := MostFreeMemory(hs, PlaceRequest{VmName: "big", MemoryBytes: 210 * gibibyte})
	if got != "" || len(rej) != 3 {
		t.Fatalf("got %q with %d rejections, want none and 3", got, len(rej))
	}
	if rej[0].Kind != "MEMORY" || rej[0].Shortfall != 54*gibibyte || rej[0].Reason != "needs 210 GiB, 156 GiB free (short by 54 GiB)" {
		t.Fatalf("h1 rejection %+v", rej[0])
	}
	if rej[1].Kind != "UNAVAILABLE" || rej[1].Reason != "host is down" || rej[2].Kind != "MEMORY" || rej[2].Shortfall != 4*gibibyte {
		t.Fatalf("rejections %+v", rej)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 4 * gibibyte: "4 GiB", 1536 << 20: "1.5 GiB", 256 << 20: "256 MiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestAvoidsCPUHotHostsWhileAnotherFits(t *testing.T) {
	hs := candidates()
	for i := range hs {
		hs[i].CPUCores = 32
	}
	hs[2].VcpusUsed = 26 // 26+2 > 0.85*32: hot once the VM lands
	hs[1].VcpusUsed = 20
	if got, _ := MostFreeMemory(hs, PlaceRequest{MemoryBytes: gibibyte, Vcpus: 2}); got != "b" {
		t.Fatalf("picked %s, want b (c has as much free memory but would run hot)", got)
	}
	hs[1].VcpusUsed, hs[0].VcpusUsed = 30, 30
	if got, _ := MostFreeMemory(hs, PlaceRequest{MemoryBytes: gibibyte, Vcpus: 2}); got != "c" {
		t.Fatalf("picked %s, want c (all hot: back to most free memory)", got)
	}
}
