#!/bin/sh
# demo-ha.sh BIN DIR [NET]: the make demo-ha target. Starts 3 etcd members
# (NET.1-3, ports 2379/2380) and 3 clusterd sharing them (NET.11-13:2030,
# each with a simulated 3-host cluster; one is elected leader, the others
# forward to it), loads the demo inventory through the list of all three,
# then kills the leader and shows the cluster answering through another.
# On a terminal the shell opens afterwards. Everything started is stopped by
# its PID at exit. NET defaults to 127.46.0. Needs etcd (Debian's
# etcd-server).
set -u
bin=$1 dir=$2 net=${3:-127.46.0}
etcd=$(command -v etcd) || { echo "demo-ha: etcd not found; apt-get install etcd-server" >&2; exit 1; }

rm -rf "$dir" && mkdir -p "$dir"
pids=
# Newest first: the managers stop (handing over their leases) before etcd.
stop() {
	for p in $pids; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	pids=
}
trap stop EXIT
trap 'exit 129' HUP
trap 'exit 143' TERM
trap : INT

cluster="m1=http://$net.1:2380,m2=http://$net.2:2380,m3=http://$net.3:2380"
for i in 1 2 3; do
	setsid "$etcd" --name "m$i" --data-dir "$dir/etcd$i" \
		--listen-client-urls "http://$net.$i:2379" --advertise-client-urls "http://$net.$i:2379" \
		--listen-peer-urls "http://$net.$i:2380" --initial-advertise-peer-urls "http://$net.$i:2380" \
		--initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "acli-demo-ha-$$" \
		--heartbeat-interval 50 --election-timeout 500 --max-txn-ops 10000 \
		--logger zap --log-level warn >"$dir/etcd$i.log" 2>&1 &
	pids="$! $pids"
done
store="etcd://$net.1:2379,$net.2:2379,$net.3:2379"

servers=
for i in 1 2 3; do
	setsid "$bin/clusterd" --listen "$net.1$i:2030" --data-dir "$dir/data$i" --store "$store" \
		--sim 3 --sim-speed 20 --sim-ssh-port 0 >"$dir/clusterd$i.out" 2>"$dir/clusterd$i.log" &
	eval "pid$i=$!"
	pids="$! $pids"
	servers="$servers${servers:+,}$net.1$i:2030"
done

# leader: the number of the clusterd whose last role line says it serves.
leader() {
	for i in 1 2 3; do
		eval "p=\$pid$i"
		kill -0 "$p" 2>/dev/null || continue
		[ "$(grep -E '^clusterd: (serving|following)' "$dir/clusterd$i.out" | tail -1 | cut -d' ' -f2)" = serving ] && { echo "$i"; return 0; }
	done
	return 1
}
wait_leader() {
	n=0
	while ! leader >/dev/null; do
		n=$((n + 1))
		[ $n -gt 300 ] && { echo "demo-ha: no leader after 30s; see $dir/*.log" >&2; exit 1; }
		sleep 0.1
	done
}
wait_leader

export ACLI_SERVER="$servers"
l=$(leader)
eval "lp=\$pid$l"
echo "etcd on $store; clusterd on $servers; leader: $net.1$l:2030 (pid $lp); logs in $dir"
"$bin/acli" <"$(dirname "$0")/../testdata/demo.acli" >"$dir/inventory.out" || { cat "$dir/inventory.out"; exit 1; }
"$bin/acli" -o wide vm.list || exit 1

echo
echo "\$ kill -9 $lp   # the leader, $net.1$l:2030"
kill -9 "$lp"
wait "$lp" 2>/dev/null
start=$(date +%s.%N)
wait_leader
echo "a new leader serves after $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }")s: $net.1$(leader):2030"
"$bin/acli" host.list && "$bin/acli" -o wide vm.list power_state=on || exit 1
if [ -t 0 ]; then
	echo
	echo "ACLI_SERVER=$servers (export it in another terminal). Try: vm.list, vm.migrate web01, and kill the new leader. exit or Ctrl-D leaves."
	"$bin/acli"
fi
