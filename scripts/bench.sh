#!/usr/bin/env bash
# bench.sh: narf benchmarks. Each subcommand starts the cluster it needs
# (scripts/cluster.sh, 127.0.0.1 only, on its own ports), measures, prints
# its results and stops the cluster again.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: scripts/bench.sh BENCHMARK [OPTIONS]

benchmarks:
  coord [--rounds N] [--dir DIR] [--base-port P]
        Coordinator failover: starts a fresh 3-coordinator cluster (--nodes 0)
        on base port P (default 17000), then N times (default 10): kill -9
        the leader and time until a write (a settings change) commits on a
        survivor; restart the killed member and let the cluster settle.
        Prints each round, then "median X ms, max Y ms over N kills".
        DIR defaults to a temporary directory, removed afterwards unless
        something failed (then its logs are kept and their path printed).

Every benchmark stops the cluster it started, also when interrupted.
EOF
}

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
PY=/usr/bin/python3
CLUSTER=$ROOT/scripts/cluster.sh

die() {
	echo "bench.sh: $*" >&2
	exit 1
}

bench_dir=""
remove_dir=0
cluster_up=0
child=""

# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
	local rc=$?
	if [[ -n $child ]]; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	if ((cluster_up)); then
		"$CLUSTER" stop --dir "$bench_dir" >/dev/null 2>&1 || true
	fi
	if ((remove_dir)); then
		if ((rc == 0)); then
			rm -rf "$bench_dir"
		else
			echo "bench.sh: logs kept in $bench_dir/logs" >&2
		fi
	fi
}

bench_coord() {
	local rounds=10 port=17000
	while (($#)); do
		case $1 in
		--rounds)
			rounds=${2:?--rounds needs a value}
			shift
			;;
		--rounds=*) rounds=${1#*=} ;;
		--dir)
			bench_dir=${2:?--dir needs a value}
			shift
			;;
		--dir=*) bench_dir=${1#*=} ;;
		--base-port)
			port=${2:?--base-port needs a value}
			shift
			;;
		--base-port=*) port=${1#*=} ;;
		-h | --help)
			usage
			exit 0
			;;
		*) die "coord: unknown argument '$1' (try --help)" ;;
		esac
		shift
	done
	if ! [[ $rounds =~ ^[0-9]{1,4}$ ]] || ((rounds < 1 || rounds > 1000)); then
		die "--rounds must be a number in 1..1000"
	fi
	if ! [[ $port =~ ^[0-9]{4,5}$ ]] || ((port < 1024 || port > 65000)); then
		die "--base-port must be a number in 1024..65000"
	fi

	if [[ -z $bench_dir ]]; then
		bench_dir=$(mktemp -d "${TMPDIR:-/tmp}/narf-bench-coord.XXXXXX")
		remove_dir=1
	fi
	bench_dir=$(realpath -m -- "$bench_dir")
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	echo "bench.sh coord: starting 3 coordinators in $bench_dir (base port $port)" >&2
	cluster_up=1
	"$CLUSTER" start --dir "$bench_dir" --nodes 0 --base-port "$port" \
		--fresh >/dev/null || die "could not start the cluster"

	# The python loop bounds itself (60 s per round); timeout is the
	# backstop so a bug there can never hang a CI job.
	local limit=$((rounds * 60 + 60)) rc=0
	timeout -k 10 "$limit" "$PY" "$ROOT/scripts/lib/bench_coord.py" \
		--dir "$bench_dir" --base-port "$port" --rounds "$rounds" \
		--cluster-sh "$CLUSTER" --coord "$ROOT/build/coordinator/coord" &
	child=$!
	wait "$child" || rc=$?
	child=""
	((rc != 124)) || echo "bench.sh: coord benchmark timed out after ${limit}s" >&2
	return "$rc"
}

case ${1:-} in
coord)
	shift
	bench_coord "$@"
	;;
-h | --help | help)
	usage
	;;
"")
	usage >&2
	exit 2
	;;
*)
	echo "bench.sh: unknown benchmark '$1' (try --help)" >&2
	exit 2
	;;
esac
