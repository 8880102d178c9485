package libvirt

import (
	"context"
	"errors"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Nothing listens on port 1 of 127.0.0.250: connections are refused at once.
const refusedURI = "qemu+tcp://127.0.0.250:1/system"

func TestWaitConnectedSaysWhyNot(t *testing.T) {
	h, err := NewHost(HostConfig{URI: refusedURI, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer wcancel()
	err = h.WaitConnected(wctx)
	if !errors.Is(err, ErrHostDown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitConnected on a refused address: %v", err)
	}
}

func TestJoinUnreachableHostChangesNothing(t *testing.T) {
	d := NewDriver(Config{})
	if _, err := d.Start(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err := d.JoinHost(context.Background(), &acliv1.Host{Name: "h9", HypervisorIp: "127.0.0.250", LibvirtUri: refusedURI})
	if err == nil {
		t.Fatal("joined a host nobody serves")
	}
	if len(d.others("")) != 0 {
		t.Fatal("a failed join left the host managed")
	}
	if err := d.CheckHost(&acliv1.Host{}); err == nil {
		t.Fatal("a host without libvirt_uri passed the check")
	}
}
