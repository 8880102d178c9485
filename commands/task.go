package commands

import (
	"context"
	"fmt"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
)

func taskCommands() []*Command {
	return []*Command{
		{
			Name:        "task.list",
			Summary:     "List tasks, newest first",
			Description: "As acli's, the list holds recent finished tasks too (include_completed=false shows only queued and running ones).",
			Keys: []Key{
				{Name: "include_completed", Type: TypeBool, Default: "true", Help: "include finished tasks"},
				{Name: "operation_type_list", Type: TypeList, Help: "only tasks of these operations", Example: "kVmCreate,kVmMigrate"},
				{Name: "limit", Type: TypeInt, Default: "100", Min: 1, Max: 100000, Help: "at most this many"},
				{Name: "entity", Type: TypeString, Help: "only tasks on this entity (name or UUID)", Example: "web01"},
			},
			Output: OutputTable,
			Validate: func(inv *Invocation) error {
				_, err := operationTypes(inv.Values["operation_type_list"].List)
				return err
			},
			Examples: []string{"task.list", "task.list operation_type_list=kVmCreate", "task.list include_completed=false limit=20"},
			Run:      runTaskList,
		},
		{
			Name:     "task.get",
			Summary:  "Show tasks in detail",
			Args:     []Arg{{Name: "task", Kind: KindTask, Many: true, Help: "task UUID"}},
			Output:   OutputBlock,
			Examples: []string{"task.get 6f1c…"},
			Run:      runTaskGet,
		},
		{
			Name:        "task.wait",
			Summary:     "Wait for tasks to finish, showing progress",
			Description: "Exits with the task's outcome: 0 when it succeeded, the mapped code of its error otherwise, 7 when --timeout passes first.",
			Args:        []Arg{{Name: "task", Kind: KindTask, Many: true, Help: "task UUID"}},
			Output:      OutputText,
			Examples:    []string{"task.wait 6f1c…", "--timeout 10m task.wait 6f1c…"},
			Run:         runTaskWait,
		},
		{
			Name:    "task.cancel",
			Summary: "Stop tasks that can end safely, and wait for them to end",
			Description: "Only a live migration that has not switched over and an image import can stop (task.get shows cancellable: true); " +
				"clusterd undoes what they did and ends them kAborted with the reason. Other tasks, and tasks that ended, are refused (exit 5), " +
				"as is a task that finished before it could stop.",
			Args:     []Arg{{Name: "task", Kind: KindTask, Many: true, Help: "task UUID"}},
			Keys:     []Key{{Name: "reason", Type: TypeString, Help: "why, recorded on the task", Example: "wrong host"}},
			Output:   OutputText,
			Examples: []string{"task.cancel 6f1c…", "task.cancel 6f1c… reason=\"wrong host\""},
			Run:      runTaskCancel,
		},
	}
}

func runTaskList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	ops, err := operationTypes(r.List("operation_type_list"))
	if err != nil {
		return err
	}
	resp, err := c.Task.ListTasks(ctx, &acliv1.ListTasksRequest{
		IncludeCompleted: r.Bool("include_completed"),
		Limit:            r.Int32("limit"),
		Entity:           r.String("entity"),
		OperationTypes:   ops,
	})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: resp.GetTasks(), Table: taskTable(resp.GetTasks())})
}

func runTaskGet(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	return getEach(ctx, r, r.Targets(0), func(ctx context.Context, id string) (*acliv1.Task, error) {
		return c.Task.GetTask(ctx, &acliv1.GetTaskRequest{Uuid: id})
	}, taskBlock)
}

func runTaskWait(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	targets := r.Targets(0)
	tasks, errs := eachTask(r, targets, func(id string) (*acliv1.Task, error) {
		return c.Task.GetTask(ctx, &acliv1.GetTaskRequest{Uuid: id})
	})
	return r.Follow(ctx, c, targets, tasks, errs)
}

// eachTask calls call for every target task; a failure is labelled with its
// target and kept in errs, in target order.
func eachTask(r *Req, targets []Target, call func(id string) (*acliv1.Task, error)) ([]*acliv1.Task, []error) {
	tasks := make([]*acliv1.Task, len(targets))
	errs := make([]error, len(targets))
	for i, t := range targets {
		task, err := call(t.ID)
		if err != nil {
			errs[i] = r.labelErr(targets, t, client.Wrap(err))
			continue
		}
		tasks[i] = task
	}
	return tasks, errs
}

func runTaskCancel(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	targets := r.Targets(0)
	tasks, errs := eachTask(r, targets, func(id string) (*acliv1.Task, error) {
		return c.Task.CancelTask(ctx, &acliv1.CancelTaskRequest{Uuid: id, Reason: r.String("reason")})
	})
	// Aborted is what was asked for; a task that finished anyway is not.
	r.Hooks.Err = func(t *acliv1.Task, err *client.Error) *client.Error {
		if t.GetStatus() == acliv1.TaskStatus_kAborted {
			return nil
		}
		return err
	}
	// follow records each target's failure in errs; done holds the ended
	// tasks in target order.
	done, _ := r.follow(ctx, c, targets, tasks, errs)
	j := 0
	for i := range targets {
		if tasks[i] == nil || j >= len(done) {
			continue
		}
		if t := done[j]; t.GetStatus() == acliv1.TaskStatus_kSucceeded {
			errs[i] = r.labelErr(targets, targets[i], client.Errorf(client.ExitRefused, "task %s (%s) finished before it could stop",
				t.GetUuid(), render.OpName(t.GetOperation())))
		}
		j++
	}
	err = joinTaskErrors(errs)
	if !r.Printer.Human() {
		if perr := r.Print(render.Doc{Data: done}); perr != nil {
			return perr
		}
	}
	return err
}

// operationTypes reads acli's operation names (kVmCreate, or VmCreate and
// EnterMaintenanceMode as progress lines print them).
func operationTypes(names []string) ([]acliv1.TaskOperation, error) {
	var out []acliv1.TaskOperation
	var valid []string
	for _, n := range names {
		found := false
		for v, name := range acliv1.TaskOperation_name {
			op := acliv1.TaskOperation(v)
			if v == 0 {
				continue
			}
			if strings.EqualFold(n, name) || strings.EqualFold(n, render.OpName(op)) || strings.EqualFold("k"+n, name) {
				out, found = append(out, op), true
				break
			}
		}
		if found {
			continue
		}
		if valid == nil {
			for v, name := range acliv1.TaskOperation_name {
				if v != 0 {
					valid = append(valid, name)
				}
			}
		}
		msg := fmt.Sprintf("operation_type_list: unknown operation %q", n)
		if best := nearest(n, valid); len(best) > 0 {
			msg += " (did you mean " + quoteJoin(best) + "?)"
		}
		return nil, usageErrorf("%s", msg)
	}
	return out, nil
}
