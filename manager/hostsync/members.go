package hostsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/scheduler"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// MembersManager is what host.add and host.remove need of the rest of the
// manager: its lock, under which a task claims the host, and its task
// engine.
type MembersManager interface {
	// Locked runs fn holding the manager's lock: what fn reads and begins
	// through l stays true until it returns.
	Locked(fn func(l MembersLocked) error) error
	// Launch persists t, returns it and runs w in the background; the
	// writes of w's Done are committed with the task's end.
	Launch(ctx context.Context, t *tasks.Task, w func(ctx context.Context) (Done, error)) (*acliv1.Task, error)
	// Progress sets t's percent and progress line.
	Progress(t *tasks.Task, percent int32, line string)
	// Update edits t's record (under the lock).
	Update(t *tasks.Task, fn func(*acliv1.Task))
}

// MembersLocked is what may be read and begun under the manager's lock.
type MembersLocked interface {
	// Holder is the running task that holds an entity or claim (nil if none).
	Holder(id string) *tasks.Task
	// Begin starts a task of op naming refs and holding the locks.
	Begin(op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) *tasks.Task
}

// Done is how a task's work ended: Writes committed with its end, then
// Committed run; Message is its closing line.
type Done struct {
	Writes    []state.Write
	Message   string
	Committed func()
}

// Members serves host.add and host.remove behind manager/rpc's host
// adapter, on drivers that implement driver.HostJoiner (libvirt): the
// driver connects and reports the host's identity and capacity; the
// committed record follows.
type Members struct {
	DB     *state.DB
	M      MembersManager
	Driver driver.Driver
	// Beats is told of a host that joined (heard from now) or left.
	Beats interface {
		Seen(host string, now time.Time)
		Forget(host string)
	}
	Now func() time.Time
}

// joiner is the driver as a HostJoiner, or why hosts cannot join or leave.
func (s *Members) joiner(op string) (driver.HostJoiner, error) {
	j, ok := s.Driver.(driver.HostJoiner)
	if !ok {
		return nil, apierr.Precondition("DRIVER", "cluster", "%s needs clusterd --driver libvirt; the %s driver's hosts come from its configuration (clusterd --sim N or --sim-config FILE)", op, s.Driver.Name())
	}
	return j, nil
}

// AddHost joins a host: its name and address are claimed by the task
// until the record is committed.
func (s *Members) AddHost(ctx context.Context, req *acliv1.AddHostRequest) (*acliv1.Task, error) {
	joiner, err := s.joiner("host.add")
	if err != nil {
		return nil, err
	}
	h := &acliv1.Host{Name: req.Name, HypervisorIp: req.HypervisorIp, CvmIp: req.CvmIp, LibvirtUri: req.LibvirtUri}
	bad := CheckJoin(h)
	if err := joiner.CheckHost(h); err != nil {
		bad = append(bad, apierr.Field{Field: "libvirt_uri", Description: err.Error()})
	}
	if len(bad) > 0 {
		return nil, apierr.InvalidArgument(bad...)
	}
	var t *tasks.Task
	err = s.M.Locked(func(l MembersLocked) error {
		var err error
		s.DB.View(func(tx *state.Tx) { err = CheckNew(tx, h) })
		if err != nil {
			return err
		}
		nameLock, ipLock := "host-name:"+h.Name, "host-ip:"+h.HypervisorIp
		for _, id := range []string{nameLock, ipLock} {
			if o := l.Holder(id); o != nil {
				return apierr.Busy("host", h.Name, o.PB().Uuid, o.PB().Operation.String())
			}
		}
		t = l.Begin(acliv1.TaskOperation_kHostAdd, []*acliv1.EntityRef{state.HostRef(h)}, nameLock, ipLock)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.M.Launch(ctx, t, func(ctx context.Context) (Done, error) {
		s.M.Progress(t, 10, "connecting to "+h.LibvirtUri)
		joined, err := joiner.JoinHost(ctx, h)
		if errors.Is(err, driver.ErrHostExists) {
			return Done{}, apierr.Precondition("HOST_EXISTS", "host:"+h.Name, "host %s cannot join: %v", h.Name, strings.TrimPrefix(err.Error(), driver.ErrHostExists.Error()+": "))
		}
		if err != nil {
			return Done{}, fmt.Errorf("host %s cannot join: %w", h.Name, err)
		}
		var other *acliv1.Host
		s.DB.View(func(tx *state.Tx) { other = tx.Host(joined.Uuid) })
		if other != nil {
			joiner.LeaveHost(joined.Uuid)
			return Done{}, apierr.Precondition("HOST_EXISTS", "host:"+other.Name, "the host at %s (uuid %s) is already in the cluster as %s (%s)", h.LibvirtUri, joined.Uuid, other.Name, other.HypervisorIp)
		}
		// The UUID is known only now: the task names the host by it too.
		s.M.Update(t, func(pb *acliv1.Task) { pb.Entities[0].Uuid = joined.Uuid })
		s.M.Progress(t, 80, fmt.Sprintf("recording host %s: %d cores, %s", h.Name, joined.CpuCores, scheduler.Bytes(joined.MemoryBytes)))
		return Done{
			Writes: []state.Write{{Key: state.HostKey(joined.Uuid), Msg: joined, Rev: 0}},
			// Heard from just now: the heartbeat monitor must not find it silent.
			Committed: func() { s.Beats.Seen(joined.Uuid, s.Now()) },
			Message:   fmt.Sprintf("host %s (%s) added: %d cores, %s, uuid %s", joined.Name, joined.HypervisorIp, joined.CpuCores, scheduler.Bytes(joined.MemoryBytes), joined.Uuid),
		}, nil
	})
}

// RemoveHost lets a host with nothing on it leave (CheckLeave, checked
// again when the task runs: a VM may have powered on there meanwhile).
func (s *Members) RemoveHost(ctx context.Context, req *acliv1.RemoveHostRequest) (*acliv1.Task, error) {
	joiner, err := s.joiner("host.remove")
	if err != nil {
		return nil, err
	}
	var t *tasks.Task
	var cur *acliv1.Host
	var rev int64
	err = s.M.Locked(func(l MembersLocked) error {
		var err error
		s.DB.View(func(tx *state.Tx) {
			if cur, err = tx.FindHost("host", req.Host); err == nil {
				rev = tx.Rev(state.HostKey(cur.Uuid))
			}
		})
		if err != nil {
			return err
		}
		if o := l.Holder(cur.Uuid); o != nil {
			return apierr.Busy("host", cur.Name, o.PB().Uuid, o.PB().Operation.String())
		}
		if err := s.leavable(cur); err != nil {
			return err
		}
		t = l.Begin(acliv1.TaskOperation_kHostRemove, []*acliv1.EntityRef{state.HostRef(cur)}, cur.Uuid)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.M.Launch(ctx, t, func(ctx context.Context) (Done, error) {
		if err := s.leavable(cur); err != nil {
			return Done{}, err
		}
		if err := joiner.LeaveHost(cur.Uuid); err != nil {
			return Done{}, err
		}
		return Done{
			Writes:    []state.Write{{Key: state.HostKey(cur.Uuid), Rev: rev}},
			Committed: func() { s.Beats.Forget(cur.Uuid) },
			Message:   fmt.Sprintf("host %s (%s) removed from the cluster", cur.Name, cur.HypervisorIp),
		}, nil
	})
}

func (s *Members) leavable(h *acliv1.Host) (err error) {
	s.DB.View(func(tx *state.Tx) { err = CheckLeave(tx, h) })
	return err
}
