// Package taskstest is a tasks.Starter for the unit tests of feature
// packages: a task's locks are held in the state.DB's busy table (reads
// too, state.Read) as the manager's start commit takes them, commits go
// through it, and a log says how each task ended.
package taskstest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/state"
	"github.com/acli-dev/acli/manager/tasks"
)

// Starter begins tasks over DB.
type Starter struct {
	DB *state.DB
	// FailNext, when set, fails the next Commit with it before anything
	// is committed.
	FailNext error

	mu    sync.Mutex
	live  map[string]*task
	n     int
	ended []string
}

type task struct {
	s     *Starter
	id    string
	op    acliv1.TaskOperation
	locks []string
}

// New is a Starter over db.
func New(db *state.DB) *Starter { return &Starter{DB: db, live: map[string]*task{}} }

func (s *Starter) Begin(ctx context.Context, kind string, op acliv1.TaskOperation, refs []*acliv1.EntityRef, locks ...string) (tasks.Quick, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	t := &task{s: s, id: fmt.Sprintf("task-%d", s.n), op: op, locks: slices.Clone(locks)}
	_, err := s.DB.Update(ctx, func(tx *state.Tx) error { tx.Take(t.id, locks...); return nil })
	if id, holder, busy := state.Busy(err); busy {
		name := refs[0].Name
		if i := slices.IndexFunc(refs, func(r *acliv1.EntityRef) bool { return r.Uuid == id }); i > 0 {
			kind, name = tasks.Noun(refs[i].Kind), refs[i].Name
		}
		op := ""
		if o := s.live[holder]; o != nil {
			op = o.op.String()
		}
		return nil, apierr.Busy(kind, name, holder, op)
	}
	if err != nil {
		return nil, err
	}
	s.live[t.id] = t
	return t, nil
}

// Held are the locks tasks hold now (state.Read keys for their reads).
func (s *Starter) Held() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.live {
		out = append(out, s.DB.HeldBy(id)...)
	}
	return out
}

// Ended is how each task ended, in order: "<op>: <message>" or
// "<op>: dropped".
func (s *Starter) Ended() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ended...)
}

func (t *task) Hold(lock string) (string, bool) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	_, err := t.s.DB.Update(context.Background(), func(tx *state.Tx) error { tx.Take(t.id, lock); return nil })
	if _, o, busy := state.Busy(err); busy {
		return o, false
	}
	t.locks = append(t.locks, lock)
	return "", true
}

func (t *task) end(what string) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.s.DB.LetGoNow(t.id, t.locks...)
	delete(t.s.live, t.id)
	t.s.ended = append(t.s.ended, t.op.String()+": "+what)
}

func (t *task) Commit(ctx context.Context, ws []state.Write, msg string) (*acliv1.Task, error) {
	t.s.mu.Lock()
	err := t.s.FailNext
	t.s.FailNext = nil
	t.s.mu.Unlock()
	if err == nil {
		_, err = t.s.DB.Update(ctx, func(tx *state.Tx) error {
			for _, w := range ws {
				if w.Msg == nil {
					tx.Delete(w.Key, w.Rev)
				} else {
					tx.Put(w.Key, w.Msg, w.Rev)
				}
			}
			return nil
		})
	}
	if err != nil {
		t.end("dropped")
		return nil, err
	}
	t.end(msg)
	return &acliv1.Task{Uuid: t.id, Operation: t.op, Status: acliv1.TaskStatus_kSucceeded, Messages: []string{msg}}, nil
}

func (t *task) Drop() { t.end("dropped") }
