package maintenance_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

func TestServiceCordon(t *testing.T) {
	s, ts, _ := newService(t)
	ctx := context.Background()
	update := func(h string, schedulable bool, reason string) error {
		_, err := s.UpdateHost(ctx, &acliv1.UpdateHostRequest{Host: h, Schedulable: &schedulable, Reason: reason})
		return err
	}
	if err := update("h1", false, "disk swap"); err != nil {
		t.Fatal(err)
	}
	if h := host(t, s, "uuid-h1"); h.Schedulable || h.SchedulableReason != "disk swap" {
		t.Fatalf("h1 after cordon: %v", h)
	}
	if err := update("127.42.0.1", true, ""); err != nil {
		t.Fatal(err)
	}
	if h := host(t, s, "uuid-h1"); !h.Schedulable || h.SchedulableReason != "" {
		t.Fatalf("h1 after uncordon: %v", h)
	}
	wantCode(t, update("h9", false, ""), codes.NotFound, `host "h9" not found`)
	other, err := ts.Begin(ctx, "host", acliv1.TaskOperation_kHostEnterMaintenanceMode, []*acliv1.EntityRef{{Name: "h2"}}, "uuid-h2")
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, update("h2", false, ""), codes.Aborted, "host h2 is busy with task")
	other.Drop()
	if h := host(t, s, "uuid-h2"); !h.Schedulable {
		t.Fatalf("a refused cordon changed h2: %v", h)
	}
	_, err = s.UpdateHost(ctx, &acliv1.UpdateHostRequest{Host: "h2"})
	wantCode(t, err, codes.InvalidArgument, "nothing to update")
	ended := []string{
		"kHostUpdate: host h1 is not schedulable: disk swap",
		"kHostUpdate: host h1 is schedulable",
		"kHostEnterMaintenanceMode: dropped",
	}
	if got := strings.Join(ts.Ended(), "\n"); got != strings.Join(ended, "\n") {
		t.Fatalf("tasks ended:\n%s\nwant:\n%s", got, strings.Join(ended, "\n"))
	}
}
