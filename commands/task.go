package commands

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
)

func taskCommands() []*Command {
	return []*Command{
		{
			Name:    "task.list",
			Summary: "List tasks, newest first",
			Keys: []Key{
				{Name: "include_completed", Type: TypeBool, Default: "false", Help: "include finished tasks"},
				{Name: "limit", Type: TypeInt, Default: "100", Min: 1, Max: 100000, Help: "at most this many"},
				{Name: "entity", Type: TypeString, Help: "only tasks on this entity (name or UUID)", Example: "web01"},
			},
			Output:   OutputTable,
			Examples: []string{"task.list", "task.list include_completed=true limit=20"},
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
	}
}

func runTaskList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Task.ListTasks(ctx, &acliv1.ListTasksRequest{
		IncludeCompleted: r.Bool("include_completed"),
		Limit:            r.Int32("limit"),
		Entity:           r.String("entity"),
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
	tasks := make([]*acliv1.Task, len(targets))
	errs := make([]error, len(targets))
	for i, t := range targets {
		task, err := c.Task.GetTask(ctx, &acliv1.GetTaskRequest{Uuid: t.ID})
		if err != nil {
			errs[i] = r.labelErr(targets, t, client.Wrap(err))
			continue
		}
		tasks[i] = task
	}
	return r.Follow(ctx, c, targets, tasks, errs)
}
