// Command acli manages hyperconverged KVM clusters through clusterd: one-shot
// commands (acli vm.list), an interactive shell (acli on a terminal) and
// scripts (acli < script.acli).
package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"

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
	return f.Execute(context.Background(), argv(os.Args))
}

// argv returns the command line to execute. Invoked as hostssh or allssh
// (the symlinks make install creates), acli is that command: its name
// becomes the first word.
func argv(args []string) []string {
	if len(args) == 0 {
		return nil
	}
	name := strings.TrimSuffix(filepath.Base(args[0]), ".exe")
	if _, ok := commands.LookupFanout(name); ok {
		return append([]string{name}, args[1:]...)
	}
	return args[1:]
}
