package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RunFunc runs one parsed command. It is cobra-free: everything it needs is
// in the Req.
type RunFunc func(ctx context.Context, r *Req) error

// Req is one command being run: the parsed line, the streams, the globals,
// a lazy client and the expanded targets of each positional.
type Req struct {
	Cmd     *Command
	Inv     *Invocation
	IO      *render.IO
	Globals Globals
	Printer *render.Printer

	// Hooks add to the progress of the tasks this command follows.
	Hooks TaskHooks

	f       *Factory
	targets [][]Target
	filter  NameFilter // from a Filter positional
}

// TaskHooks let a command say more about the tasks it follows than their
// progress: the line it returns is printed (human output only) above the
// task's progress, and a failed task's error can be refined.
type TaskHooks struct {
	// Note is called on every state of a task (first is true for the first
	// one seen); a non-empty line is printed before the state is shown.
	Note func(t *acliv1.Task, first bool) string
	// Err refines the error of a task that did not succeed.
	Err func(t *acliv1.Task, err *client.Error) *client.Error
}

// Client returns the connection to clusterd, dialing on first use.
func (r *Req) Client(ctx context.Context) (*client.Client, error) {
	return r.f.Client(ctx, r.Globals)
}

// Has reports whether key was given on the line.
func (r *Req) Has(key string) bool { return r.Inv.Set[key] }

// String returns a key's text (the canonical name for enums).
func (r *Req) String(key string) string { return r.Inv.Values[key].Raw }

// Int returns an int, size (bytes) or enum (number) key.
func (r *Req) Int(key string) int64 { return r.Inv.Values[key].Int }

// Int32 returns Int as an int32 (keys with int32 fields declare bounds).
func (r *Req) Int32(key string) int32 { return int32(r.Inv.Values[key].Int) }

// Bool returns a bool key.
func (r *Req) Bool(key string) bool { return r.Inv.Values[key].Bool }

// List returns a list key.
func (r *Req) List(key string) []string { return r.Inv.Values[key].List }

// Arg returns the single value of positional i ("" when absent).
func (r *Req) Arg(i int) string {
	if i < len(r.Inv.Args) && len(r.Inv.Args[i]) > 0 {
		return r.Inv.Args[i][0]
	}
	return ""
}

// Targets returns positional i expanded (globs, ranges, comma lists).
func (r *Req) Targets(i int) []Target {
	if i < len(r.targets) {
		return r.targets[i]
	}
	return nil
}

// Print outputs the command's result.
func (r *Req) Print(d render.Doc) error { return r.Printer.Print(d) }

// expand resolves every positional to targets, listing live entities only
// when a pattern needs them.
func (r *Req) expand(ctx context.Context) error {
	r.targets = make([][]Target, len(r.Cmd.Args))
	for i, a := range r.Cmd.Args {
		words := r.Inv.Args[i]
		if len(words) == 0 {
			continue
		}
		var (
			ts  []Target
			err error
		)
		switch {
		case a.Filter:
			r.filter, err = NewNameFilter(words)
		case a.Generate:
			ts, err = Generate(words)
		default:
			list := r.lister(ctx, a.Kind)
			ts, err = Expand(words, a.Kind, list)
			if err == nil && len(ts) > 1 {
				err = r.checkExist(ctx, a.Kind, ts, list)
			}
		}
		if err != nil {
			return err
		}
		r.targets[i] = ts
	}
	return nil
}

// lister lists the live entities of a kind once, however often it is called.
func (r *Req) lister(ctx context.Context, k Kind) func() ([]Entity, error) {
	var live []Entity
	loaded := false
	return func() ([]Entity, error) {
		if loaded {
			return live, nil
		}
		c, err := r.Client(ctx)
		if err != nil {
			return nil, err
		}
		es, err := ListEntities(ctx, c, k)
		if err != nil {
			return nil, client.Wrap(err)
		}
		live, loaded = es, true
		return live, nil
	}
}

// checkExist makes a command on several targets all or nothing: every
// target must exist before any is acted on, so "vm.off web01 nosuch" does
// not power web01 off and then fail. (The server still decides each one.)
func (r *Req) checkExist(ctx context.Context, k Kind, ts []Target, list func() ([]Entity, error)) error {
	spec := LookupKind(k)
	if spec == nil || spec.Partial {
		return nil
	}
	live, err := list()
	if err != nil {
		return err
	}
	var missing []string
	for _, t := range ts {
		if !slices.ContainsFunc(live, func(e Entity) bool { return e.is(t.ID) }) {
			missing = append(missing, t.ID)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	what := spec.Singular
	if len(missing) > 1 {
		what = spec.Plural
	}
	quoted := make([]string, len(missing))
	for i, m := range missing {
		quoted[i] = strconv.Quote(m)
	}
	names := strings.Join(quoted, ", ")
	if n := len(quoted); n > 1 {
		names = strings.Join(quoted[:n-1], ", ") + " and " + quoted[n-1]
	}
	msg := fmt.Sprintf("%s %s not found", what, names)
	if hint := r.missingHint(ctx, k, missing[0], live); hint != "" {
		msg += " (did you mean " + hint + "?)"
	}
	ce := client.Errorf(client.ExitNotFound, "%s; nothing was done", msg)
	ce.Missing = missing
	return ce
}

// missingHint suggests what a missing target was meant to be: a key of the
// command naming an entity of another kind ("vm.migrate web01 h2" meant
// host=h2), else the nearest live name.
func (r *Req) missingHint(ctx context.Context, k Kind, word string, live []Entity) string {
	for _, key := range r.Cmd.Keys {
		if key.Type != TypeRef || key.Ref == k || r.Has(key.Name) {
			continue
		}
		others, err := r.lister(ctx, key.Ref)()
		if err != nil {
			continue
		}
		if slices.ContainsFunc(others, func(e Entity) bool { return e.is(word) }) {
			return key.Name + "=" + word
		}
	}
	names := make([]string, 0, len(live))
	for _, e := range live {
		names = append(names, e.Name)
	}
	if best := nearest(word, names); len(best) > 0 {
		return quoteJoin(best)
	}
	return ""
}

// confirm asks "<Verb> 2 VMs? (yes/no)" on a terminal; -y answers yes;
// without a terminal and without -y it refuses (exit 2).
func (r *Req) confirm() error {
	if r.Cmd.Destructive == "" || r.Globals.Yes {
		return nil
	}
	var names []string
	kind := Kind("")
	for i, a := range r.Cmd.Args {
		if len(r.targets[i]) > 0 {
			names = names[:0]
			for _, t := range r.targets[i] {
				names = append(names, t.Name)
			}
			kind = a.Kind
		}
	}
	what := "this"
	if spec := LookupKind(kind); spec != nil && len(names) > 0 {
		what = spec.Count(names)
	}
	question := fmt.Sprintf("%s %s?", r.Cmd.Destructive, what)
	if !r.IO.InTTY {
		// As acli's: an answer piped on stdin counts (echo yes | acli
		// vg.delete x). A script's stdin holds its lines, not answers.
		if r.Printer.Shell || r.IO.In == nil {
			return usageErrorf("%s needs confirmation (%s); pass -y to confirm without a terminal", r.Cmd.Name, question)
		}
		answer, _ := readLine(r.IO.In)
		if answer == "" {
			return usageErrorf("%s needs confirmation (%s); pass -y or answer yes on stdin; nothing changed", r.Cmd.Name, question)
		}
		fmt.Fprintf(r.IO.Err, "%s (yes/no) %s\n", question, answer)
		if ok, perr := ParseBool(answer); perr != nil || !ok {
			return client.Errorf(client.ExitFailed, "not confirmed (answer %q); nothing changed", answer)
		}
		return nil
	}
	fmt.Fprintf(r.IO.Out, "%s (yes/no) ", question)
	answer, err := readLine(r.IO.In)
	if err != nil && answer == "" {
		return client.Errorf(client.ExitFailed, "not confirmed: %v", err)
	}
	if ok, perr := ParseBool(answer); perr != nil || !ok {
		return client.Errorf(client.ExitFailed, "not confirmed; nothing changed")
	}
	return nil
}

// readLine reads up to a newline one byte at a time, so nothing after the
// answer is consumed from a shared stdin.
func readLine(in io.Reader) (string, error) {
	var sb strings.Builder
	b := make([]byte, 1)
	for {
		n, err := in.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return strings.TrimSpace(sb.String()), nil
			}
			sb.WriteByte(b[0])
		}
		if err != nil {
			return strings.TrimSpace(sb.String()), err
		}
	}
}

// TaskFunc submits one mutation for one target and returns its task.
type TaskFunc func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error)

// maxInFlight bounds concurrent submissions for many targets.
const maxInFlight = 8

// maxWatches bounds the tasks followed at once: each is a stream, and
// clusterd serves at most 128 on one connection (docs/limits.md).
const maxWatches = 64

// EachTask submits fn for every target, then (unless wait=false) follows
// every task to its end, showing progress. The JSON data is the list of
// final tasks. Failures keep their exit code; several different ones are a
// plain failure listing each.
func (r *Req) EachTask(ctx context.Context, targets []Target, fn TaskFunc) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	tasks := make([]*acliv1.Task, len(targets))
	errs := make([]error, len(targets))
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			task, err := fn(ctx, c, t)
			if err != nil {
				errs[i] = r.labelErr(targets, t, client.Wrap(err))
				return
			}
			tasks[i] = task
		}()
	}
	wg.Wait()
	wait := r.Bool("wait")
	if _, declared := r.Cmd.Key("wait"); !declared {
		wait = true
	}
	if !wait {
		var lines []string
		var submitted []*acliv1.Task
		for _, t := range tasks {
			if t != nil {
				lines = append(lines, t.GetUuid())
				submitted = append(submitted, t)
			}
		}
		if err := r.Print(render.Doc{Data: submitted, Text: strings.Join(lines, "\n")}); err != nil {
			return err
		}
		return joinTaskErrors(errs)
	}
	return r.Follow(ctx, c, targets, tasks, errs)
}

// Follow waits for tasks (tasks[i] belongs to targets[i]; nil where the
// submission already failed with errs[i]) and reports like EachTask.
func (r *Req) Follow(ctx context.Context, c *client.Client, targets []Target, tasks []*acliv1.Task, errs []error) error {
	done, err := r.follow(ctx, c, targets, tasks, errs)
	if !r.Printer.Human() {
		if perr := r.Print(render.Doc{Data: done}); perr != nil {
			return perr
		}
	}
	return err
}

// follow is Follow without printing the final tasks: it shows progress and
// returns the tasks that ended and the joined errors.
func (r *Req) follow(ctx context.Context, c *client.Client, targets []Target, tasks []*acliv1.Task, errs []error) ([]*acliv1.Task, error) {
	var progress *render.Progress
	if r.Printer.Human() {
		progress = render.NewProgress(r.IO.Out, r.IO.OutTTY)
		defer progress.Close()
	}
	var wg sync.WaitGroup
	final := make([]*acliv1.Task, len(targets))
	watches := make(chan struct{}, maxWatches)
	for i, t := range tasks {
		if t == nil {
			continue
		}
		wg.Add(1)
		go func() {
			watches <- struct{}{}
			defer func() { <-watches; wg.Done() }()
			label := render.OpName(t.GetOperation())
			if len(targets) > 1 {
				label += " " + targets[i].Name
			}
			first := true
			ft, err := watchTask(ctx, c, t, func(t *acliv1.Task) {
				if progress != nil {
					if first {
						progress.Begin(label, t)
					}
					if r.Hooks.Note != nil {
						if line := r.Hooks.Note(t, first); line != "" {
							progress.Note(line)
						}
					}
					progress.Update(label, t)
				}
				first = false
			})
			final[i] = ft
			if err != nil {
				errs[i] = r.labelErr(targets, targets[i], err)
				return
			}
			if ft.GetStatus() != acliv1.TaskStatus_kSucceeded {
				terr := client.TaskError(render.OpName(ft.GetOperation()), ft)
				if r.Hooks.Err != nil {
					terr = r.Hooks.Err(ft, terr)
				}
				if terr != nil {
					errs[i] = r.labelErr(targets, targets[i], terr)
				}
			}
		}()
	}
	wg.Wait()
	var done []*acliv1.Task
	for _, t := range final {
		if t != nil {
			done = append(done, t)
		}
	}
	return done, joinTaskErrors(errs)
}

func (r *Req) labelErr(all []Target, t Target, err error) error {
	if len(all) < 2 {
		return err
	}
	var ae *client.Error
	if errors.As(err, &ae) {
		cp := *ae
		cp.Msg = t.Name + ": " + ae.Msg
		return &cp
	}
	return fmt.Errorf("%s: %w", t.Name, err)
}

func joinTaskErrors(errs []error) error {
	var failed []error
	for _, e := range errs {
		if e != nil {
			failed = append(failed, e)
		}
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return failed[0]
	}
	code := client.ExitCode(failed[0])
	lines := make([]string, 0, len(failed))
	for _, e := range failed {
		if client.ExitCode(e) != code {
			code = client.ExitFailed
		}
		lines = append(lines, e.Error())
	}
	return &client.Error{Code: code, Msg: fmt.Sprintf("%d of %d operations failed", len(failed), len(errs)), Details: lines}
}

// watchTask follows a task until it ends, calling show on every state.
// A deadline (--timeout) leaves the task running and exits 7.
func watchTask(ctx context.Context, c *client.Client, t *acliv1.Task, show func(*acliv1.Task)) (*acliv1.Task, error) {
	show(t)
	last := t
	if isFinal(t) {
		return t, nil
	}
	// A manager that stops or loses the leadership ends the stream with
	// Unavailable: watch again (on the next manager of a --server list)
	// until the failover window passes without news.
	lastNews := time.Now()
	for {
		stream, err := c.Task.WatchTask(ctx, &acliv1.GetTaskRequest{Uuid: t.GetUuid()})
		if err == nil {
			for {
				var nt *acliv1.Task
				if nt, err = stream.Recv(); err != nil {
					break
				}
				last, lastNews = nt, time.Now()
				show(nt)
				if isFinal(nt) {
					return nt, nil
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if !client.Retryable(err) || ctx.Err() != nil || time.Since(lastNews) > client.FailoverWindow {
			return last, waitErr(ctx, last, err)
		}
		select {
		case <-ctx.Done():
			return last, waitErr(ctx, last, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	// The stream ended without a final state (manager restarting, say):
	// ask once more rather than guess.
	nt, err := c.Task.GetTask(ctx, &acliv1.GetTaskRequest{Uuid: t.GetUuid()})
	if err != nil {
		return last, waitErr(ctx, last, err)
	}
	show(nt)
	if !isFinal(nt) {
		return nt, client.Errorf(client.ExitFailed, "lost track of task %s (still %s); see: acli task.wait %s", nt.GetUuid(), nt.GetStatus(), nt.GetUuid())
	}
	return nt, nil
}

func waitErr(ctx context.Context, t *acliv1.Task, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
		return client.Errorf(client.ExitTimeout, "timed out waiting for %s; task %s is still running (see: acli task.wait %s)",
			render.OpName(t.GetOperation()), t.GetUuid(), t.GetUuid())
	}
	if errors.Is(ctx.Err(), context.Canceled) || status.Code(err) == codes.Canceled {
		// Ctrl-C ends the wait, not the task: as with --timeout, say so
		// and how to follow it (or stop it, when it can), exit 7.
		stop := ""
		if t.GetCancellable() {
			stop = "; to stop it, try: acli task.cancel " + t.GetUuid()
		}
		return client.Errorf(client.ExitTimeout, "interrupted; %s goes on as task %s on clusterd (see: acli task.wait %s%s)",
			render.OpName(t.GetOperation()), t.GetUuid(), t.GetUuid(), stop)
	}
	return client.Wrap(err)
}

func isFinal(t *acliv1.Task) bool {
	switch t.GetStatus() {
	case acliv1.TaskStatus_kSucceeded, acliv1.TaskStatus_kFailed, acliv1.TaskStatus_kAborted:
		return true
	}
	return false
}
