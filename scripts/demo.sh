#!/bin/sh
# demo.sh BIN DIR ADDR: the make demo target. Starts a fresh 3-host
# simulated cluster on ADDR (a free loopback port when ADDR is taken), loads
# a small inventory, then opens the shell on a terminal. clusterd is
# stopped by its PID when the shell exits or any step fails.
#
# - clusterd runs in its own session: Ctrl-C at the terminal reaches the
#   shell's command only, never clusterd.
# - Every acli call goes to the address this clusterd printed, so the demo
#   never loads its inventory into another cluster that owns ADDR.
# - The simulated hosts' SSH keys are kept across demos (DIR/data/ssh), so
#   known_hosts entries recorded with --accept-new stay valid.
set -u
bin=$1 dir=$2 want=$3

mkdir -p "$dir"
find "$dir" -mindepth 1 -maxdepth 1 ! -name data -exec rm -rf {} +
[ -d "$dir/data" ] && find "$dir/data" -mindepth 1 -maxdepth 1 ! -name ssh -exec rm -rf {} +

pid=
stop() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	pid=
}
trap stop EXIT
trap 'exit 129' HUP
trap 'exit 143' TERM
# The shell ignores Ctrl-C meant for the command in the foreground; that
# command (acli) decides what Ctrl-C means.
trap : INT

# start ADDR: run clusterd; print the address it serves on, or fail.
start() {
	: >"$dir/clusterd.out"
	setsid "$bin/clusterd" --listen "$1" --data-dir "$dir/data" --sim 3 --sim-speed 20 \
		>"$dir/clusterd.out" 2>"$dir/clusterd.log" &
	pid=$!
	i=0
	while [ $i -lt 100 ]; do
		addr=$(sed -n 's/^clusterd: serving on \([^ ]*\) .*/\1/p' "$dir/clusterd.out")
		[ -n "$addr" ] && return 0
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; pid=; return 1; }
		sleep 0.1
		i=$((i + 1))
	done
	echo "demo: clusterd did not start in 10s; see $dir/clusterd.log" >&2
	exit 1
}

if ! start "$want"; then
	if grep -q "address already in use" "$dir/clusterd.log"; then
		echo "demo: $want is taken by another process; using a free port instead" >&2
		start "${want%:*}:0" || { cat "$dir/clusterd.log" >&2; exit 1; }
	else
		cat "$dir/clusterd.log" >&2
		exit 1
	fi
fi

export ACLI_SERVER="$addr"
export ACLI_SSH_IDENTITY="$dir/data/ssh/id_ed25519"
echo "clusterd (pid $pid) on $addr, log in $dir/clusterd.log"
[ "$addr" = "$want" ] || echo "In another terminal: export ACLI_SERVER=$addr"
"$bin/acli" <"$(dirname "$0")/../testdata/demo.acli" &&
	"$bin/acli" host.list && "$bin/acli" -o wide vm.list &&
	echo '$ acli hostssh "virsh list"' && "$bin/acli" hostssh "virsh list" || exit 1
if [ -t 0 ]; then
	echo
	echo "Try: vm.list, host.enter_maintenance_mode_check h1, hostssh \"virsh list\", allssh hostname, help. exit or Ctrl-D leaves."
	"$bin/acli"
fi
