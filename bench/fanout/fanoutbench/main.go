// Command fanoutbench is the fan-out alone, as hostssh/allssh would run it,
// for bench/fanout/run.sh to race against pdsh, clush and parallel-ssh.
package main

import (
	"os"

	"github.com/acli-dev/acli/fanout"
)

func main() {
	os.Exit(fanout.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
