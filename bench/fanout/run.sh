#!/usr/bin/env bash
# Fan-out race on loopback: acli's fan-out against pdsh, clush and
# parallel-ssh (and one plain ssh), 16 and 64 hosts, measured by hyperfine.
#
# Hosts are 127.0.1.1..N on port 2222 served by real OpenSSH sshd (one sshd
# per 16 addresses, sshd's listen limit). Servers pin KexAlgorithms to
# curve25519-sha256 (OpenSSH's default sntrup761 costs its client ~10x more
# CPU and x/crypto/ssh does not offer it) and give sessions an empty HOME.
# All clients read the same throwaway ~/.ssh (config, key, known_hosts):
# OpenSSH takes ~ from the password database, so ssh-based tools get the
# config with -F; acli's fan-out reads $HOME/.ssh. No agent, strict host
# key checking.
#
# Needs root (sshd, login as root), OpenSSH, pdsh, clustershell, pssh and
# hyperfine:  apt-get install -y --no-install-recommends pdsh clustershell \
#                 pssh hyperfine openssh-server openssh-client
# Ends with one table (mean wall time per tool and size) and whether acli
# met its targets: faster than every other tool, and at 16 hosts within
# 1.5x of one ssh. Not part of make test: the figures need a quiet machine.
#
# Environment: SIZES="16 64"  RUNS=10  WARMUP=2  PORT=2222
#              OUT=dir (keep the markdown tables there)
#              ACLI=path of the acli binary (default: built here)
set -euo pipefail

SIZES=${SIZES:-"16 64"}
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-2}
PORT=${PORT:-2222}
CMD='hostname; sleep 0.2'
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

die() { echo "bench-fanout: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (sshd must log sessions in as root)"
for tool in /usr/sbin/sshd ssh ssh-keygen pdsh clush parallel-ssh hyperfine; do
	command -v "$tool" >/dev/null || die "missing $tool; install with: apt-get install -y --no-install-recommends pdsh clustershell pssh hyperfine openssh-server openssh-client"
done

WORK=$(mktemp -d /tmp/bench-fanout.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
SSHD_PIDS=()
cleanup() {
	for pid in "${SSHD_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${SSHD_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK/home" "$WORK/session-home" "$WORK"/sshd* "$WORK"/hosts.* "$WORK/acli"
	rmdir "$WORK/results" 2>/dev/null || true # an empty one, after a failure
	rmdir "$WORK" 2>/dev/null || true         # kept when it holds the results
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MAX=0
for n in $SIZES; do [ "$n" -gt "$MAX" ] && MAX=$n; done
[ "$MAX" -ge 1 ] && [ "$MAX" -le 254 ] || die "SIZES must be between 1 and 254 hosts"

if [ -z "${ACLI:-}" ]; then
	echo "building acli..."
	ACLI=$WORK/acli
	(cd "$ROOT" && go build -o "$ACLI" ./cmd/acli)
fi
[ -x "$ACLI" ] || die "ACLI=$ACLI is not an executable"

# Keys, client home and an empty home for remote sessions.
HOME_DIR=$WORK/home
mkdir -p "$HOME_DIR/.ssh" "$WORK/session-home" /run/sshd
chmod 700 "$HOME_DIR/.ssh"
ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$WORK/sshd_host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$HOME_DIR/.ssh/id_ed25519"
cp "$HOME_DIR/.ssh/id_ed25519.pub" "$WORK/sshd_authorized_keys"
HOSTKEY=$(cut -d' ' -f1,2 "$WORK/sshd_host_ed25519.pub")
: >"$HOME_DIR/.ssh/known_hosts"
for i in $(seq 1 "$MAX"); do
	echo "[127.0.1.$i]:$PORT $HOSTKEY" >>"$HOME_DIR/.ssh/known_hosts"
done
cat >"$HOME_DIR/.ssh/config" <<EOF
Host 127.0.1.*
  Port $PORT
  User root
  IdentityFile $HOME_DIR/.ssh/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $HOME_DIR/.ssh/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ControlMaster no
  LogLevel ERROR
EOF
chmod 600 "$HOME_DIR/.ssh/config"

# One sshd per 16 addresses.
for ((first = 1; first <= MAX; first += 16)); do
	cfg=$WORK/sshd_config.$first
	{
		echo "Port $PORT"
		for ((i = first; i < first + 16 && i <= MAX; i++)); do echo "ListenAddress 127.0.1.$i"; done
		cat <<EOF
HostKey $WORK/sshd_host_ed25519
AuthorizedKeysFile $WORK/sshd_authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
UseDNS no
PidFile none
KexAlgorithms curve25519-sha256
MaxStartups 200
PrintMotd no
SetEnv HOME=$WORK/session-home
LogLevel ERROR
EOF
	} >"$cfg"
	/usr/sbin/sshd -D -e -f "$cfg" 2>>"$WORK/sshd.log" &
	SSHD_PIDS+=($!)
done

# Wait until the last address answers.
for _ in $(seq 1 100); do
	if (exec 3<>"/dev/tcp/127.0.1.$MAX/$PORT") 2>/dev/null; then break; fi
	sleep 0.05
done

SSHCFG=$HOME_DIR/.ssh/config
export HOME=$HOME_DIR PDSH_RCMD_TYPE=ssh
# pdsh's default ssh arguments plus the bench config.
export PDSH_SSH_ARGS="-2 -a -x -F $SSHCFG -l%u %h"
unset SSH_AUTH_SOCK

# Every tool must reach every host before it is timed.
check() {
	local n=$1 name=$2
	shift 2
	local got
	got=$("$@" 2>&1 | grep -c "$(hostname)" || true)
	[ "$got" -eq "$n" ] || die "$name reached $got of $n hosts: $("$@" 2>&1 | tail -3)"
}

echo "session HOME on the servers: $(ssh -F "$SSHCFG" 127.0.1.1 'echo $HOME')"
for n in $SIZES; do
	range="127.0.1.[1-$n]"
	hostsfile=$WORK/hosts.$n
	seq 1 "$n" | sed 's/^/127.0.1./' >"$hostsfile"
	acli="$ACLI hostssh --hosts '$range' -f $n '$CMD'"
	pdsh="pdsh -f $n -w '$range' '$CMD'"
	clush="clush -f $n -o '-F $SSHCFG' -w '$range' '$CMD'"
	pssh="parallel-ssh -p $n -x '-F $SSHCFG' -h $hostsfile -i '$CMD'"
	single="ssh -F $SSHCFG 127.0.1.1 '$CMD'"
	for t in acli pdsh clush pssh; do
		check "$n" "$t" bash -c "${!t}"
	done
	echo
	echo "== $n hosts: '$CMD' =="
	hyperfine --style basic --warmup "$WARMUP" --runs "$RUNS" \
		--export-markdown "$OUT/fanout-$n.md" --export-csv "$OUT/fanout-$n.csv" \
		-n "ssh (1 host)" "$single" \
		-n "acli hostssh -f $n" "$acli" \
		-n "pdsh -f $n" "$pdsh" \
		-n "clush -f $n" "$clush" \
		-n "parallel-ssh -p $n" "$pssh"
done

echo
for n in $SIZES; do
	echo "### $n hosts"
	cat "$OUT/fanout-$n.md"
	echo
done

# One table: mean wall time per tool and size (rows in hyperfine's order,
# the same for every size), then the targets: acli fastest at every size,
# and within 1.5x of one ssh at 16 hosts.
summary() {
	local files=() header="| tool |" rule="|:---|"
	for n in $SIZES; do
		files+=("$OUT/fanout-$n.csv")
		header+=" $n hosts |"
		rule+="---:|"
	done
	echo "### '$CMD', mean ± σ of $RUNS runs"
	echo "$header"
	echo "$rule"
	awk -F, -v sizes="$SIZES" '
		FNR == 1 { f++; next }
		{
			row = FNR - 1
			name[row] = $1
			sub(/ [0-9]+$/, " N", name[row])
			cell[row, f] = sprintf("%.3f s ± %.3f", $2, $3)
			mean[row, f] = $2
			rows = row > rows ? row : rows
		}
		END {
			split(sizes, sz, " ")
			for (r = 1; r <= rows; r++) {
				line = "| " name[r] " |"
				for (i = 1; i <= f; i++) line = line " " cell[r, i] " |"
				print line
			}
			print ""
			for (i = 1; i <= f; i++) {
				best = ""
				for (r = 3; r <= rows; r++) if (best == "" || mean[r, i] < mean[best, i]) best = r
				verdict = mean[2, i] < mean[best, i] ? "faster than" : "NOT faster than"
				printf "%s hosts: acli %.3f s, %s the best other tool (%s, %.3f s); %.2fx one ssh\n",
					sz[i], mean[2, i], verdict, name[best], mean[best, i], mean[2, i] / mean[1, i]
			}
		}' "${files[@]}"
}
summary | tee "$OUT/summary.md"
echo
echo "tables kept in $OUT"
