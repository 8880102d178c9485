// Command acli manages hyperconverged KVM clusters through clusterd: one-shot
// commands (acli vm.list), an interactive shell (acli on a terminal) and
// scripts (acli < script.acli).
package main

import (
	"context"
	"os"

	"github.com/acli-dev/acli/commands"
	"github.com/acli-dev/acli/render"
	"github.com/acli-dev/acli/shell"
)

func main() {
	os.Exit(run())
}

func run() int {
	f := commands.NewFactory(render.System(), os.Getenv)
	f.Shell = shell.Run
	defer f.Close()
	return f.Execute(context.Background(), os.Args[1:])
}
