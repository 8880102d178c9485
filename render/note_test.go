package render

import (
	"bytes"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// A note stays on screen: on a terminal it replaces the in-place progress
// line (which the next update redraws); in a pipe it is one more line.
func TestProgressNote(t *testing.T) {
	running := &acliv1.Task{Uuid: "t1", Status: acliv1.TaskStatus_kRunning, Percent: 50, ProgressMessage: "round 2"}
	done := &acliv1.Task{Uuid: "t1", Status: acliv1.TaskStatus_kSucceeded}
	for _, c := range []struct {
		tty  bool
		want string
	}{
		{true, "\r\x1b[KVmMigrate: [##########..........]  50% round 2\r\x1b[Kvm moved\n\r\x1b[KVmMigrate: complete\n"},
		{false, "VmMigrate: pending\nvm moved\nVmMigrate: complete\n"}, // progress stays on a terminal
	} {
		var buf bytes.Buffer
		p := NewProgress(&buf, c.tty)
		p.Update("VmMigrate", running)
		p.Note("vm moved")
		p.Update("VmMigrate", done)
		p.Close()
		if buf.String() != c.want {
			t.Errorf("tty=%v: %q, want %q", c.tty, buf.String(), c.want)
		}
	}
}

// OpName keeps acli's names for host maintenance.
func TestOpName(t *testing.T) {
	for op, want := range map[acliv1.TaskOperation]string{
		acliv1.TaskOperation_kHostEnterMaintenanceMode: "EnterMaintenanceMode",
		acliv1.TaskOperation_kHostExitMaintenanceMode:  "ExitMaintenanceMode",
		acliv1.TaskOperation_kCvmEnterMaintenanceMode:  "CvmEnterMaintenanceMode",
		acliv1.TaskOperation_kVmMigrate:                "VmMigrate",
	} {
		if got := OpName(op); got != want {
			t.Errorf("%v: %q, want %q", op, got, want)
		}
	}
}
