// Command acli manages hyperconverged KVM clusters through clusterd: one-shot
// commands (acli vm.list), an interactive shell (acli on a terminal) and
// scripts (acli < script.acli).
package main

import (
	"context"
	"os"
	"os/signal"
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
	// Ctrl-C ends a one-shot command through its context, so it can say
	// what goes on (a followed task keeps running on clusterd); a second
	// Ctrl-C kills at once. The shell handles Ctrl-C per line itself.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	go func() {
		if _, ok := <-sig; ok {
			signal.Stop(sig)
			cancel()
		}
	}()
	f := commands.NewFactory(render.System(), os.Getenv)
	f.Shell = func(ctx context.Context, f *commands.Factory, g commands.Globals) error {
		signal.Stop(sig)
		return shell.Run(ctx, f, g)
	}
	f.Script = shell.Script
	defer f.Close()
	return f.Execute(ctx, argv(os.Args))
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
