#!/usr/bin/env bash
# bench.sh: narf benchmarks. Each subcommand starts the cluster it needs
# (scripts/cluster.sh, 127.0.0.1 only, on its own ports), measures, prints
# its results and stops the cluster again.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: scripts/bench.sh BENCHMARK [OPTIONS]

benchmarks:
  coord [--rounds N] [--dir DIR] [--base-port P] [--tls]
        Coordinator failover: starts a fresh 3-coordinator cluster (--nodes 0)
        on base port P (default 17000), then N times (default 10): kill -9
        the leader and time until a write (a settings change) commits on a
        survivor; restart the killed member and let the cluster settle.
        Prints each round, then "median X ms, max Y ms over N kills".
        DIR defaults to a temporary directory, removed afterwards unless
        something failed (then its logs are kept and their path printed).
        --tls: Raft and the API over TLS (cluster.sh start --tls).

  engine [--requests N] [--clients C] [--pipeline P[,P...]] [--rounds R]
         [--tests LIST] [--keys K] [--build DIR] [--skip-memory] [--tls]
         [--shapes LIST] [--memory-only]
        The single-node engine against Debian's redis-server: starts a
        standalone datanode and a redis-server (--save '' --appendonly no)
        side by side on random free 127.0.0.1 ports and runs the same
        `redis-benchmark -t TEST -n N -c C -P P -d 32 -r 100000` against
        each, one test at a time, alternating narf/redis, R rounds (defaults:
        N=200000, C=50, P=1 and 16, R=3, tests set,get,incr,mset). Prints
        per test and depth the median requests/s of both, the server CPU
        time per request (user+system, in ns from /proc/PID/task/*/schedstat)
        and the medians of the per-round narf/redis ratios. Then, on freshly
        started servers, loads K keys (default 1,000,000; 16-byte keys,
        32-byte values) into each with `redis-cli --pipe` and prints
        resident bytes per key (VmRSS after minus VmRSS before) and the
        ratio (target: narf <= 0.8x). DIR (default build/) holds
        datanode/datanode.
        --shapes: the memory phase for each listed shape on fresh servers:
        strings (the above), hash10/set10/zset10/list10 (K elements in
        keys of 10 small elements) or hashbig/setbig/zsetbig/listbig (K
        elements in one key), as resident bytes per element (target:
        narf <= 1.0x), measured 15 s after the load: both allocators give
        pages back only after their 10 s decay time (0.5 s figures are
        printed too). --memory-only skips the throughput phase.
        --tls: both servers also get a --tls-port with the same throwaway
        certificates (a CA, a server and a client certificate made with
        openssl; client certificates required, as Redis's default) and
        redis-benchmark runs with --tls against those ports, and also
        against narf's plain port: the table adds narf's TLS cost (TLS
        over plain, throughput and CPU per request). No memory phase.

  failover [--rounds N] [--rate R] [--keys K] [--dir DIR] [--base-port P]
           [--tls]
        Data node failover: starts 3 coordinators and 4 data nodes
        (scripts/cluster.sh, base port P, default 17300); a recording
        writer SETs K keys (default 400) at about R writes/s (default 200),
        routing by CLUSTER SLOTS itself. N rounds (default 5): kill -9 the
        busiest primary, wait for its failover, write on, restart it and
        wait until under_replicated is 0. Prints per round how long writes
        to its slots were failing (first failure to first success after),
        failed writes on the other nodes' slots and acknowledged writes
        lost; then the medians. Exits 1 if anything acknowledged was lost
        or a write to another node's slot failed.
        --tls: the cluster runs TLS on every link (cluster.sh start --tls:
        Raft, the coordinator API, peer links; the writer uses the data
        nodes' TLS ports), for failover time with TLS against without.

  cluster [--rounds R] [--requests N[,N]] [--pipeline P[,P]] [--clients C]
          [--dir DIR] [--base-port P] [--tls] [--tests LIST]
        narf (3 coordinators, 3 data nodes, 2 copies, ack all; base port P,
        default 17600) against a Redis Cluster of 3 masters + 3 replicas
        (redis-server --cluster-enabled yes --cluster-node-timeout 1000,
        made with redis-cli --cluster create --cluster-replicas 1, on free
        ports in a temp dir), both driven by `redis-benchmark --cluster
        -t set,get -c C -d 32 -r 100000 -q -P P -n N`, alternating
        narf/redis, R rounds (defaults: C=50, P=1,16 with N=1000000,3000000,
        R=3; --requests 100000 for a quick run). Prints each run, the
        medians and the median narf/redis ratios for SET and GET, and
        whether the narf map changed (any failure decision) during each
        run; exits 1 if a failure decision was taken.
        --tls: TLS everywhere on both sides, with one throwaway CA
        (cluster.sh start --tls makes it in DIR/tls): narf's coordinators
        and data nodes with --tls-cluster yes (the load goes to the data
        nodes' TLS ports, P+301..), the redis-servers with port 0,
        tls-port, tls-cluster yes, tls-replication yes and
        tls-auth-clients yes (narf's default), and redis-benchmark with
        --tls --cacert --cert --key (client certificates on both).
        --tests LIST: redis-benchmark's tests instead of set,get (hset,
        zadd, lpush, sadd...; and hget, which redis-benchmark lacks: HGET
        myhash{tag} element:__rand_int__ as its command test, reading the fields
        its hset test wrote, so name it after hset).

  bigslot [--members N] [--dir DIR]
        One sorted set of N members (default 1,000,000) in one slot of a
        3-node cluster, ZADD and PING load on it, then SIGTERM to its
        primary: the node leaves, so the slot is synced to another node and
        handed over under load. Prints the time from SIGTERM to the new
        primary, ZADD latencies before and during, failed writes, the
        old primary's PING p99 while it synced, and acknowledged members
        missing afterwards (target 0).

  rebalance [--keys K] [--workers W] [--pipeline P] [--steady S] [--moves M]
            [--load per-node|fan-out] [--out PREFIX] [--dir DIR]
            [--base-port P]
        Live rebalance: starts 3 coordinators and 3 data nodes (base port
        P, default 17900), loads K keys (default 1,000,000) of 32-byte
        values with redis-cli --pipe (one per node, straight to the
        primaries), runs a steady load of pipelined batches of P GET/SET
        (default 32, 20% SET) counting answered and failed requests per
        second, and after S seconds (default 10) `cluster.sh add-node`
        starts a 4th node. --load per-node (the default): W narf-loadgen
        processes (default 4), each keeping a batch in flight to every
        primary, so W clients per node, as independent clients give a
        cluster; enough to keep the nodes busy. --load fan-out: W Python
        processes (default 2) each splitting a batch across the nodes and
        waiting for all of them, so one slow node stalls the whole load.
        Prints the time until the map is balanced with nothing moving or
        syncing, the bytes the replication streams carried meanwhile (INFO
        replication stream_bytes) against the ideal quarter of the data,
        failed requests (target 0) and the minimum 1-second rate during
        the rebalance against the steady rate (target >= 70%), and per
        phase the batches' round trips (p50/p99/max). --moves M sets the
        cluster's `moves` setting (slots syncing or moving at once;
        default 1024) before the join. Writes PREFIX.csv (per-second
        rates) and PREFIX.png (gnuplot; the join and the end as vertical
        lines); PREFIX defaults to build/bench/rebalance-DATE. Exits 1 if
        a target is missed.

  settle [--nodes N,N...] [--rounds R] [--base-port P]
        A new user's start (issue 17): for each N (default 24,48), R
        times (default 3), `cluster.sh start --nodes N --fresh` in a new
        directory (base port P, default 18500), timed until it returns
        (every slot served, nothing moving or syncing; cluster.sh gives
        up after 120 s); then the nodes up, the "marking it down"
        decisions and "loop stalled" lines of the coordinators' logs,
        the lost slots and the map epoch from `cachecli status`. Stops
        and removes each cluster (its logs are kept when it did not
        settle).

  scale --nodes N [--scenario S] [--protocol P] [--zones K]
        [--heartbeat-ms MS] [--phase-s S] [--cap-s S] [--base-port P]
        [--dir DIR] [--keep]
        The coordinators under N data nodes (issue 17): starts a fresh
        coordinator trio with no data node (cluster.sh start --nodes 0,
        base port P, default 23500) with its Raft data on tmpfs (DIR,
        default /dev/shm/narf-scale-XXXXXX), every coordinator on CPU 1,
        then the leader (all its threads) moved to CPU 0 and re-pinned if
        leadership moves; runs narf-hbsim on CPU 1 (N fake nodes sending
        heartbeats every MS, default 100; protocol P: delta, the default,
        takes map entries in heartbeat replies, full fetches the whole
        map at every new epoch, as nodes did before issue 17) through its
        join phase and the scenarios of list S in turn (steady, add,
        silent, lost10 or zone: with nodes in K zones, default 0 = none,
        3 for zone, every node of one zone lost; default steady, S
        seconds long, default 30; the
        others end when the map is quiet again, capped at --cap-s, default
        240). Prints hbsim's table and JSON line, then the leader logs'
        "loop stalled" lines (count, max ms) and the nodes marked down.
        Stops everything afterwards; DIR is removed unless --keep or a
        failure. Without taskset, runs unpinned and says so.

Every benchmark stops the cluster or servers it started, also when
interrupted.
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
	local rounds=10 port=17000 tls=()
	while (($#)); do
		case $1 in
		--tls) tls=(--tls) ;;
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
	export NARF_SECRET_FILE=$bench_dir/cluster.secret
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	echo "bench.sh coord: starting 3 coordinators in $bench_dir (base port $port)" >&2
	cluster_up=1
	"$CLUSTER" start --dir "$bench_dir" --nodes 0 --base-port "$port" \
		--fresh "${tls[@]}" >/dev/null || die "could not start the cluster"
	if ((${#tls[@]})); then
		export NARF_TLS_DIR=$bench_dir/tls NARF_TLS=1
	fi

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

# --- engine: datanode vs redis-server ----------------------------------------

engine_dir=""
engine_pids=()

# Stop the servers this script started: SIGTERM, SIGKILL after 10 s.
# shellcheck disable=SC2317 # also called through the EXIT trap
engine_stop() {
	local pid i
	for pid in "${engine_pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${engine_pids[@]}"; do
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "bench.sh: pid $pid ignored SIGTERM for 10 s; SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	engine_pids=()
}

# shellcheck disable=SC2317 # called through the EXIT trap
engine_cleanup() {
	local rc=$?
	if [[ -n $child ]]; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	engine_stop
	if [[ -n $engine_dir ]]; then
		if ((rc == 0)); then
			rm -rf "$engine_dir"
		else
			echo "bench.sh: server logs kept in $engine_dir" >&2
		fi
	fi
}

# Start one datanode and one redis-server on fresh ports; sets narf_port,
# narf_pid, redis_port and redis_pid. $1 names the log files.
engine_start() {
	local tag=$1 ports
	mapfile -t ports < <("$PY" "$ROOT/scripts/lib/bench_engine.py" ports 2)
	((${#ports[@]} == 2)) || die "could not find two free ports"
	narf_port=${ports[0]}
	redis_port=${ports[1]}
	local tls_flags=() narf_tls=() redis_tls=()
	if ((tls)); then
		mapfile -t ports < <("$PY" "$ROOT/scripts/lib/bench_engine.py" ports 2)
		((${#ports[@]} == 2)) || die "could not find two free TLS ports"
		narf_tls_port=${ports[0]}
		redis_tls_port=${ports[1]}
		tls_flags=(--tls-cert-file "$engine_dir/server.crt"
			--tls-key-file "$engine_dir/server.key"
			--tls-ca-cert-file "$engine_dir/ca.crt")
		narf_tls=(--tls-port "$narf_tls_port" "${tls_flags[@]}")
		redis_tls=(--tls-port "$redis_tls_port" "${tls_flags[@]}")
	fi
	"$DATANODE" --standalone --port "$narf_port" --log-level warn \
		"${narf_tls[@]}" </dev/null >"$engine_dir/narf-$tag.log" 2>&1 &
	narf_pid=$!
	engine_pids+=("$narf_pid")
	redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
		--appendonly no --daemonize no --dir "$engine_dir" \
		--logfile "$engine_dir/redis-$tag.log" "${redis_tls[@]}" \
		</dev/null >/dev/null 2>&1 &
	redis_pid=$!
	engine_pids+=("$redis_pid")
	timeout -k 5 30 "$PY" "$ROOT/scripts/lib/bench_engine.py" wait \
		"$narf_port" "$redis_port" ||
		die "servers did not come up (logs in $engine_dir)"
	kill -0 "$narf_pid" 2>/dev/null || die "datanode exited at start"
	kill -0 "$redis_pid" 2>/dev/null || die "redis-server exited at start"
	echo "bench.sh engine: datanode pid $narf_pid on 127.0.0.1:$narf_port," \
		"redis-server pid $redis_pid on 127.0.0.1:$redis_port" >&2
}

# --tls: a throwaway CA, a server certificate for 127.0.0.1 and a client
# certificate in engine_dir (EC P-256 keys).
engine_certs() {
	local d=$engine_dir name
	(
		cd "$d"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-nodes -keyout ca.key -out ca.crt -days 2 \
			-subj "/CN=narf bench CA"
		for name in server client; do
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
				-nodes -keyout "$name.key" -out "$name.csr" \
				-subj "/CN=narf bench $name"
			echo "subjectAltName=IP:127.0.0.1" >"$name.ext"
			openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key \
				-CAcreateserial -out "$name.crt" -days 2 \
				-extfile "$name.ext"
		done
	) >"$d/openssl.log" 2>&1 || die "openssl failed (see $d/openssl.log)"
}

# Run bench_engine.py PHASE LIMIT [ARGS] against the running pair.
engine_phase() {
	local phase=$1 limit=$2 rc=0
	shift 2
	timeout -k 10 "$limit" "$PY" "$ROOT/scripts/lib/bench_engine.py" \
		"$phase" --narf-port "$narf_port" --narf-pid "$narf_pid" \
		--redis-port "$redis_port" --redis-pid "$redis_pid" "$@" &
	child=$!
	wait "$child" || rc=$?
	child=""
	((rc != 124)) || echo "bench.sh: engine $phase timed out after ${limit}s" >&2
	return "$rc"
}

bench_engine() {
	local requests=200000 clients=50 pipeline=1,16 rounds=3
	local tests=set,get,incr,mset keys=1000000 build=$ROOT/build memory=1
	local tls=0 shapes=strings throughput=1
	while (($#)); do
		case $1 in
		--requests | -n)
			requests=${2:?$1 needs a value}
			shift
			;;
		--requests=*) requests=${1#*=} ;;
		--clients | -c)
			clients=${2:?$1 needs a value}
			shift
			;;
		--clients=*) clients=${1#*=} ;;
		--pipeline | -P)
			pipeline=${2:?$1 needs a value}
			shift
			;;
		--pipeline=*) pipeline=${1#*=} ;;
		--rounds)
			rounds=${2:?--rounds needs a value}
			shift
			;;
		--rounds=*) rounds=${1#*=} ;;
		--tests | -t)
			tests=${2:?$1 needs a value}
			shift
			;;
		--tests=*) tests=${1#*=} ;;
		--keys)
			keys=${2:?--keys needs a value}
			shift
			;;
		--keys=*) keys=${1#*=} ;;
		--build)
			build=${2:?--build needs a value}
			shift
			;;
		--build=*) build=${1#*=} ;;
		--skip-memory) memory=0 ;;
		--shapes)
			shapes=${2:?--shapes needs a value}
			shift
			;;
		--shapes=*) shapes=${1#*=} ;;
		--memory-only) throughput=0 ;;
		--tls)
			tls=1
			memory=0
			;;
		-h | --help)
			usage
			exit 0
			;;
		*) die "engine: unknown argument '$1' (try --help)" ;;
		esac
		shift
	done
	if ! [[ $requests =~ ^[0-9]{4,9}$ ]]; then
		die "--requests must be a number from 1000 to 999999999"
	fi
	if ! [[ $clients =~ ^[0-9]{1,4}$ ]] || ((clients < 1 || clients > 5000)); then
		die "--clients must be a number in 1..5000"
	fi
	if ! [[ $pipeline =~ ^[1-9][0-9]{0,3}(,[1-9][0-9]{0,3})*$ ]]; then
		die "--pipeline must be a depth or a list such as 1,16"
	fi
	if ! [[ $rounds =~ ^[1-9][0-9]?$ ]]; then
		die "--rounds must be a number in 1..99"
	fi
	if ! [[ $tests =~ ^[a-z][a-z0-9_]*(,[a-z][a-z0-9_]*)*$ ]]; then
		die "--tests must be a list such as set,get,incr,mset"
	fi
	if ! [[ $shapes =~ ^(strings|(hash|set|zset|list)(10|big))(,(strings|(hash|set|zset|list)(10|big)))*$ ]]; then
		die "--shapes must be a list of strings, hash10, hashbig, set10, setbig, zset10, zsetbig, list10, listbig"
	fi
	if ! [[ $keys =~ ^[0-9]{4,8}$ ]]; then
		die "--keys must be a number from 1000 to 99999999"
	fi
	DATANODE=$(realpath -m -- "$build")/datanode/datanode
	[[ -x $DATANODE ]] || die "no datanode binary at $DATANODE (build first)"
	local tool
	for tool in redis-server redis-benchmark redis-cli; do
		command -v "$tool" >/dev/null ||
			die "$tool is missing (Debian packages redis-server, redis-tools)"
	done
	if ldd "$DATANODE" 2>/dev/null | grep -Eq 'lib(a|ub|t)san'; then
		echo "bench.sh: WARNING: $DATANODE is built with sanitizers;" \
			"its numbers mean little" >&2
	fi

	engine_dir=$(mktemp -d "${TMPDIR:-/tmp}/narf-bench-engine.XXXXXX")
	trap engine_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	# Each redis-benchmark run may take at most 300 s (bench_engine.py
	# enforces it); the phase's timeout is the backstop.
	local runs
	runs=$((rounds * ($(tr -cd , <<<"$pipeline" | wc -c) + 1) *
		($(tr -cd , <<<"$tests" | wc -c) + 1) * 2))
	local tls_args=()
	if ((tls)); then
		command -v openssl >/dev/null || die "openssl is missing"
		engine_certs
		runs=$((runs * 3 / 2))
	fi
	if ((throughput)); then
		engine_start bench
		if ((tls)); then
			tls_args=(--tls-dir "$engine_dir" --narf-tls-port "$narf_tls_port"
				--redis-tls-port "$redis_tls_port")
		fi
		engine_phase throughput $((runs * 300 + 60)) --requests "$requests" \
			--clients "$clients" --pipeline "$pipeline" --rounds "$rounds" \
			--tests "$tests" --max-seconds $((runs * 300)) --run-timeout 300 \
			"${tls_args[@]}"
		engine_stop
	fi
	if ((memory)); then
		local shape
		for shape in ${shapes//,/ }; do
			echo
			engine_start memory
			engine_phase memory 1200 --keys "$keys" --shape "$shape" \
				--run-timeout 540
			engine_stop
		done
	fi
}

# --- failover and cluster: a narf cluster from cluster.sh --------------------

# start_narf NODES PORT NAME [--tls]: a fresh cluster of 3 coordinators and
# NODES data nodes in bench_dir (a temporary directory unless --dir was
# given); --tls: cluster.sh start --tls, and NARF_TLS_DIR for our calls.
start_narf() {
	local nodes=$1 port=$2 tls_opt=()
	[[ ${4:-} != --tls ]] || tls_opt=(--tls)
	if [[ -z $bench_dir ]]; then
		bench_dir=$(mktemp -d "${TMPDIR:-/tmp}/narf-bench-$3.XXXXXX")
		remove_dir=1
	fi
	bench_dir=$(realpath -m -- "$bench_dir")
	export NARF_SECRET_FILE=$bench_dir/cluster.secret
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	echo "bench.sh $3: starting 3 coordinators and $nodes data nodes in" \
		"$bench_dir (base port $port)" >&2
	cluster_up=1
	"$CLUSTER" start --dir "$bench_dir" --nodes "$nodes" --base-port "$port" \
		--fresh "${tls_opt[@]}" >/dev/null || die "could not start the cluster"
	if ((${#tls_opt[@]})); then
		export NARF_TLS_DIR=$bench_dir/tls NARF_TLS=1
	fi
	if ldd "$ROOT/build/datanode/datanode" 2>/dev/null |
		grep -Eq 'lib(a|ub|t)san'; then
		echo "bench.sh: WARNING: the datanode is built with sanitizers;" \
			"its numbers mean little" >&2
	fi
}

# run_py LIMIT SCRIPT ARGS...: the python part under timeout, in the
# background so a signal reaches the cleanup at once.
run_py() {
	local limit=$1 rc=0
	shift
	timeout -k 10 "$limit" "$PY" "$@" &
	child=$!
	wait "$child" || rc=$?
	child=""
	((rc != 124)) || echo "bench.sh: $(basename "$1") timed out after ${limit}s" >&2
	return "$rc"
}

check_port() {
	if ! [[ $1 =~ ^[0-9]{4,5}$ ]] || (($1 < 1024 || $1 > 65000)); then
		die "--base-port must be a number in 1024..65000"
	fi
}

bench_failover() {
	local rounds=5 port=17300 rate=200 keys=400 tls=()
	while (($#)); do
		case $1 in
		--tls) tls=(--tls) ;;
		--rounds)
			rounds=${2:?--rounds needs a value}
			shift
			;;
		--rounds=*) rounds=${1#*=} ;;
		--rate)
			rate=${2:?--rate needs a value}
			shift
			;;
		--rate=*) rate=${1#*=} ;;
		--keys)
			keys=${2:?--keys needs a value}
			shift
			;;
		--keys=*) keys=${1#*=} ;;
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
		*) die "failover: unknown argument '$1' (try --help)" ;;
		esac
		shift
	done
	if ! [[ $rounds =~ ^[0-9]{1,3}$ ]] || ((rounds < 1 || rounds > 100)); then
		die "--rounds must be a number in 1..100"
	fi
	if ! [[ $rate =~ ^[0-9]{1,4}$ ]] || ((rate < 10 || rate > 5000)); then
		die "--rate must be a number in 10..5000 (writes/s)"
	fi
	if ! [[ $keys =~ ^[0-9]{1,6}$ ]] || ((keys < 10)); then
		die "--keys must be a number from 10 to 999999"
	fi
	check_port "$port"
	start_narf 4 "$port" failover "${tls[@]}"
	# Each round is bounded to 60 s of writing plus its waits (about
	# 150 s at worst); the timeout is the backstop.
	run_py $((rounds * 200 + 60)) "$ROOT/scripts/lib/bench_failover.py" \
		--dir "$bench_dir" --base-port "$port" --nodes 4 \
		--rounds "$rounds" --rate "$rate" --keys "$keys" \
		--cluster-sh "$CLUSTER" --max-seconds $((rounds * 200))
}

bench_cluster() {
	local rounds=3 port=17600 requests=1000000,3000000 pipeline=1,16
	local clients=50 tool tls=0 tests=set,get
	while (($#)); do
		case $1 in
		--tests | -t)
			tests=${2:?$1 needs a value}
			shift
			;;
		--tests=*) tests=${1#*=} ;;
		--rounds)
			rounds=${2:?--rounds needs a value}
			shift
			;;
		--rounds=*) rounds=${1#*=} ;;
		--requests | -n)
			requests=${2:?$1 needs a value}
			shift
			;;
		--requests=*) requests=${1#*=} ;;
		--pipeline | -P)
			pipeline=${2:?$1 needs a value}
			shift
			;;
		--pipeline=*) pipeline=${1#*=} ;;
		--clients | -c)
			clients=${2:?$1 needs a value}
			shift
			;;
		--clients=*) clients=${1#*=} ;;
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
		--tls) tls=1 ;;
		-h | --help)
			usage
			exit 0
			;;
		*) die "cluster: unknown argument '$1' (try --help)" ;;
		esac
		shift
	done
	if ! [[ $rounds =~ ^[1-9][0-9]?$ ]]; then
		die "--rounds must be a number in 1..99"
	fi
	if ! [[ $requests =~ ^[0-9]{4,9}(,[0-9]{4,9})*$ ]]; then
		die "--requests must be a number from 1000 to 999999999, or one per pipeline depth"
	fi
	if ! [[ $pipeline =~ ^[1-9][0-9]{0,3}(,[1-9][0-9]{0,3})*$ ]]; then
		die "--pipeline must be a depth or a list such as 1,16"
	fi
	if [[ $requests == *,* ]] &&
		(($(tr -cd , <<<"$requests" | wc -c) != $(tr -cd , <<<"$pipeline" | wc -c))); then
		die "--requests needs one value or one per pipeline depth"
	fi
	if ! [[ $clients =~ ^[0-9]{1,4}$ ]] || ((clients < 1 || clients > 5000)); then
		die "--clients must be a number in 1..5000"
	fi
	check_port "$port"
	for tool in redis-server redis-benchmark redis-cli; do
		command -v "$tool" >/dev/null ||
			die "$tool is missing (Debian packages redis-server, redis-tools)"
	done
	local narf_port=$((port + 201)) tls_args=()
	if ((tls)); then
		start_narf 3 "$port" cluster --tls
		narf_port=$((port + 301))
		tls_args=(--tls-dir "$bench_dir/tls")
	else
		start_narf 3 "$port" cluster
	fi
	local runs
	runs=$((rounds * ($(tr -cd , <<<"$pipeline" | wc -c) + 1) * 2))
	run_py $((runs * 600 + 120)) "$ROOT/scripts/lib/bench_cluster.py" \
		--narf-port "$narf_port" "${tls_args[@]}" \
		--coord "127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2)),127.0.0.1:$((port + 3))" \
		--rounds "$rounds" --requests "$requests" --pipeline "$pipeline" \
		--clients "$clients" --tests "$tests" --run-timeout 600 \
		--max-seconds $((runs * 600))
}

bench_rebalance() {
	local port=17900 keys=1000000 workers="" pipeline=32 steady=10 out="" moves=0
	local load=per-node
	while (($#)); do
		case $1 in
		--keys)
			keys=${2:?--keys needs a value}
			shift
			;;
		--keys=*) keys=${1#*=} ;;
		--workers)
			workers=${2:?--workers needs a value}
			shift
			;;
		--workers=*) workers=${1#*=} ;;
		--pipeline | -P)
			pipeline=${2:?$1 needs a value}
			shift
			;;
		--pipeline=*) pipeline=${1#*=} ;;
		--steady)
			steady=${2:?--steady needs a value}
			shift
			;;
		--steady=*) steady=${1#*=} ;;
		--moves)
			moves=${2:?--moves needs a value}
			shift
			;;
		--moves=*) moves=${1#*=} ;;
		--load)
			load=${2:?--load needs a value}
			shift
			;;
		--load=*) load=${1#*=} ;;
		--out)
			out=${2:?--out needs a value}
			shift
			;;
		--out=*) out=${1#*=} ;;
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
		*) die "rebalance: unknown argument '$1' (try --help)" ;;
		esac
		shift
	done
	if ! [[ $keys =~ ^[0-9]{3,8}$ ]] || ((keys < 1000)); then
		die "--keys must be a number from 1000 to 99999999"
	fi
	if [[ -z $workers ]]; then
		workers=4
		[[ $load == per-node ]] || workers=2
	fi
	if ! [[ $workers =~ ^[0-9]{1,2}$ ]] || ((workers < 1 || workers > 32)); then
		die "--workers must be a number in 1..32"
	fi
	if ! [[ $pipeline =~ ^[0-9]{1,4}$ ]] || ((pipeline < 1 || pipeline > 1000)); then
		die "--pipeline must be a number in 1..1000"
	fi
	if ! [[ $steady =~ ^[0-9]{1,3}$ ]] || ((steady < 4 || steady > 600)); then
		die "--steady must be a number of seconds in 4..600"
	fi
	if ! [[ $moves =~ ^[0-9]{1,5}$ ]] || ((moves > 16384)); then
		die "--moves must be a number in 0..16384 (0: the default)"
	fi
	[[ $load == per-node || $load == fan-out ]] ||
		die "--load must be per-node or fan-out"
	check_port "$port"
	command -v redis-cli >/dev/null ||
		die "redis-cli is missing (Debian package redis-tools)"
	command -v gnuplot >/dev/null ||
		echo "bench.sh: gnuplot is missing (Debian package gnuplot-nox): no PNG" >&2
	if [[ -z $out ]]; then
		out=$ROOT/build/bench/rebalance-$(date +%Y%m%d-%H%M%S)
	fi
	out=$(realpath -m -- "$out")
	start_narf 3 "$port" rebalance
	# Loading, steady load, a rebalance of at most 300 s and 5 s after;
	# the timeout is the backstop.
	run_py $((steady + 900)) "$ROOT/scripts/lib/bench_rebalance.py" \
		--dir "$bench_dir" --base-port "$port" --cluster-sh "$CLUSTER" \
		--keys "$keys" --workers "$workers" --pipeline "$pipeline" \
		--steady "$steady" --moves "$moves" --load "$load" --out "$out" \
		--loadgen "$ROOT/build/tests/narf-loadgen" \
		--max-seconds $((steady + 840))
}

bench_bigslot() {
	local port=18100 members=1000000
	while (($#)); do
		case $1 in
		--members)
			members=${2:?--members needs a value}
			shift
			;;
		--members=*) members=${1#*=} ;;
		--dir)
			bench_dir=${2:?--dir needs a value}
			shift
			;;
		--dir=*) bench_dir=${1#*=} ;;
		-h | --help)
			usage
			exit 0
			;;
		*) die "bigslot: unknown argument '$1' (try --help)" ;;
		esac
		shift
	done
	if ! [[ $members =~ ^[0-9]{3,8}$ ]]; then
		die "--members must be a number from 100 to 99999999"
	fi
	command -v redis-cli >/dev/null ||
		die "redis-cli is missing (Debian package redis-tools)"
	start_narf 3 "$port" bigslot
	run_py 900 "$ROOT/scripts/lib/bench_bigslot.py" --base-port "$port" \
		--members "$members"
}

# --- scale: the coordinators under N simulated data nodes --------------------

# The pid of the coordinator leader of $bench_dir, or nothing.
scale_leader_pid() {
	"$CLUSTER" status --dir "$bench_dir" 2>/dev/null |
		awk '$4 == "leader" { print $2; exit }'
}

# Pin the leader (all its threads) to CPU 0 and the other members to CPU 1,
# again whenever leadership moves; runs in the background until killed.
# shellcheck disable=SC2317 # run in the background
scale_pin_loop() {
	local pinned="" pid i p
	while :; do
		pid=$(scale_leader_pid)
		if [[ -n $pid && $pid != "$pinned" ]]; then
			for ((i = 1; i <= 3; i++)); do
				read -r p <"$bench_dir/pids/c$i.pid" || continue
				[[ $p == "$pid" ]] && continue
				taskset -a -cp 1 "$p" >/dev/null 2>&1 || true
			done
			if taskset -a -cp 0 "$pid" >/dev/null 2>&1; then
				[[ -z $pinned ]] || echo "bench.sh scale: leader moved: re-pinned pid $pid to CPU 0" >&2
				pinned=$pid
			fi
		fi
		sleep 1
	done
}

# One cluster start of N data nodes, timed to "settled" (cluster.sh start
# returns once every slot is served and nothing moves or syncs), then what
# the coordinators' logs and status say about it.
settle_once() {
	local nodes=$1 port=$2 round=$3 dir t0 t1 rc=0 secs down stalls max st
	dir=$(mktemp -d "${TMPDIR:-/tmp}/narf-settle-XXXXXX")
	bench_dir=$dir
	cluster_up=1
	t0=$(date +%s%N)
	"$CLUSTER" start --dir "$dir" --nodes "$nodes" --base-port "$port" \
		--fresh --no-setup >/dev/null 2>"$dir/start.err" || rc=$?
	t1=$(date +%s%N)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
	((rc == 0)) || secs="$secs (not settled: cluster.sh start exit $rc)"
	local logs=("$dir"/logs/c[123].log)
	down=$(cat "${logs[@]}" | grep -c 'marking it down' || true)
	stalls=$(cat "${logs[@]}" | grep -c 'loop stalled' || true)
	max=$(cat "${logs[@]}" | sed -n 's/.*loop stalled \([0-9]*\) ms.*/\1/p' |
		sort -n | tail -1)
	st=$(NARF_SECRET_FILE=$dir/cluster.secret "$ROOT/build/cli/cachecli" --coord \
		"127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2)),127.0.0.1:$((port + 3))" \
		status --json 2>/dev/null |
		/usr/bin/python3 -c 'import json, sys
s = json.load(sys.stdin)
print(s["slots"]["lost"], s["epoch"], sum(n["state"] == "up" for n in s["nodes"]))' 2>/dev/null ||
		echo "? ? ?")
	local lost epoch up
	read -r lost epoch up <<<"$st"
	printf '%5s %5s  %-40s %6s %6s %6s %5s %12s\n' "$nodes" "$round" "$secs" \
		"$up" "$down" "$lost" "$epoch" "$stalls (${max:-0})"
	"$CLUSTER" stop --dir "$dir" >/dev/null 2>&1 || true
	cluster_up=0
	if ((rc == 0)); then
		rm -rf "$dir"
	else
		echo "bench.sh settle: logs kept in $dir/logs" >&2
	fi
	bench_dir=""
}

bench_settle() {
	local nodes=24,48 rounds=3 port=18500 n r
	while (($#)); do
		case $1 in
		--nodes)
			nodes=${2:?--nodes needs a value}
			shift
			;;
		--nodes=*) nodes=${1#*=} ;;
		--rounds)
			rounds=${2:?--rounds needs a value}
			shift
			;;
		--rounds=*) rounds=${1#*=} ;;
		--base-port)
			port=${2:?--base-port needs a value}
			shift
			;;
		--base-port=*) port=${1#*=} ;;
		-h | --help)
			usage
			exit 0
			;;
		*) die "settle: unknown argument '$1' (try --help)" ;;
		esac
		shift
	done
	if ! [[ $nodes =~ ^[0-9]{1,3}(,[0-9]{1,3})*$ ]]; then
		die "--nodes must be a list of numbers in 1..99 such as 24,48"
	fi
	if ! [[ $rounds =~ ^[1-9][0-9]?$ ]]; then
		die "--rounds must be a number in 1..99"
	fi
	check_port "$port"
	[[ -x $ROOT/build/cli/cachecli ]] || die "build/cli/cachecli is missing: ninja -C build"
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	printf '%5s %5s  %-40s %6s %6s %6s %5s %12s\n' nodes round \
		"secs to settled" up downs lost epoch "stalls (max)"
	for n in ${nodes//,/ }; do
		((n >= 1 && n <= 99)) || die "--nodes: $n is not in 1..99"
		for ((r = 1; r <= rounds; r++)); do
			settle_once "$n" "$port" "$r"
		done
	done
}

bench_scale() {
	local nodes="" scenario=steady hb=100 phase=30 cap=240 port=23500 keep=0
	local protocol=delta zones=0
	while (($#)); do
		case $1 in
		--zones)
			zones=${2:?--zones needs a value}
			shift
			;;
		--zones=*) zones=${1#*=} ;;
		--protocol)
			protocol=${2:?--protocol needs a value}
			shift
			;;
		--protocol=*) protocol=${1#*=} ;;
		--nodes)
			nodes=${2:?--nodes needs a value}
			shift
			;;
		--nodes=*) nodes=${1#*=} ;;
		--scenario)
			scenario=${2:?--scenario needs a value}
			shift
			;;
		--scenario=*) scenario=${1#*=} ;;
		--heartbeat-ms)
			hb=${2:?--heartbeat-ms needs a value}
			shift
			;;
		--heartbeat-ms=*) hb=${1#*=} ;;
		--phase-s)
			phase=${2:?--phase-s needs a value}
			shift
			;;
		--phase-s=*) phase=${1#*=} ;;
		--cap-s)
			cap=${2:?--cap-s needs a value}
			shift
			;;
		--cap-s=*) cap=${1#*=} ;;
		--base-port)
			port=${2:?--base-port needs a value}
			shift
			;;
		--base-port=*) port=${1#*=} ;;
		--dir)
			bench_dir=${2:?--dir needs a value}
			shift
			;;
		--dir=*) bench_dir=${1#*=} ;;
		--keep) keep=1 ;;
		-h | --help)
			usage
			exit 0
			;;
		*) die "scale: unknown argument '$1' (try --help)" ;;
		esac
		shift
	done
	[[ -n $nodes ]] || die "scale: --nodes N is required"
	if ! [[ $nodes =~ ^[0-9]{1,5}$ ]] || ((nodes < 1 || nodes > 20000)); then
		die "--nodes must be a number in 1..20000"
	fi
	if ! [[ $zones =~ ^[0-9]{1,4}$ ]]; then
		die "--zones must be a number in 0..1000"
	fi
	local sc
	for sc in ${scenario//,/ }; do
		case $sc in
		steady | add | silent | lost10) ;;
		zone) ((zones >= 2)) || zones=3 ;;
		*) die "--scenario must list steady, add, silent, lost10 or zone" ;;
		esac
	done
	case $protocol in
	delta | full) ;;
	*) die "--protocol must be delta or full" ;;
	esac
	if ! [[ $hb =~ ^[0-9]{2,5}$ ]] || ((hb < 10 || hb > 10000)); then
		die "--heartbeat-ms must be a number in 10..10000"
	fi
	for v in "$phase" "$cap"; do
		if ! [[ $v =~ ^[0-9]{1,4}$ ]] || ((v < 1)); then
			die "--phase-s and --cap-s must be numbers in 1..9999"
		fi
	done
	if ! [[ $port =~ ^[0-9]{4,5}$ ]] || ((port < 1024 || port > 65000)); then
		die "--base-port must be a number in 1024..65000"
	fi
	local sim=$ROOT/build/tests/narf-hbsim
	[[ -x $sim ]] || die "$sim is missing: ninja -C build"
	if [[ -z $bench_dir ]]; then
		local shm=/dev/shm
		[[ -d $shm && -w $shm ]] || shm=${TMPDIR:-/tmp}
		bench_dir=$(mktemp -d "$shm/narf-scale-XXXXXX")
		((keep)) || remove_dir=1
	fi
	bench_dir=$(realpath -m -- "$bench_dir")
	export NARF_SECRET_FILE=$bench_dir/cluster.secret
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# One socket per fake node in hbsim, one per node in the leader.
	ulimit -n "$((nodes + 1024))" 2>/dev/null ||
		echo "bench.sh scale: could not raise ulimit -n to $((nodes + 1024))" >&2

	local pin=(taskset -c 1) ncpu
	ncpu=$(nproc 2>/dev/null || echo 1)
	if ! command -v taskset >/dev/null || ((ncpu < 2)); then
		pin=()
		echo "bench.sh scale: no taskset or one CPU: running unpinned" >&2
	fi
	echo "bench.sh scale: 3 coordinators in $bench_dir (base port $port), $nodes simulated nodes, scenario $scenario, protocol $protocol" >&2
	cluster_up=1
	"${pin[@]}" "$CLUSTER" start --dir "$bench_dir" --nodes 0 \
		--base-port "$port" --fresh >/dev/null ||
		die "could not start the coordinators"
	local pins="" i p pinner=""
	for ((i = 1; i <= 3; i++)); do
		read -r p <"$bench_dir/pids/c$i.pid" || die "no pid file for c$i"
		pins+=${pins:+,}$p
	done
	if ((${#pin[@]})); then
		scale_pin_loop &
		pinner=$!
	fi
	local limit=$((cap * 3 + phase + 60)) rc=0
	timeout -k 10 "$limit" "${pin[@]}" "$sim" \
		--coords "127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2)),127.0.0.1:$((port + 3))" \
		--pids "$pins" --secret-file "$bench_dir/node.key" \
		--nodes "$nodes" --scenario "$scenario" --heartbeat-ms "$hb" \
		--protocol "$protocol" --zones "$zones" \
		--phase-s "$phase" --phase-cap-s "$cap" --settle-s "$cap" --json &
	child=$!
	wait "$child" || rc=$?
	child=""
	if [[ -n $pinner ]]; then
		kill "$pinner" 2>/dev/null || true
		wait "$pinner" 2>/dev/null || true
	fi
	((rc != 124)) || echo "bench.sh: scale timed out after ${limit}s" >&2
	local logs=("$bench_dir"/logs/c[123].log) stalls max down
	stalls=$(cat "${logs[@]}" | grep -c 'loop stalled' || true)
	max=$(cat "${logs[@]}" | sed -n 's/.*loop stalled \([0-9]*\) ms.*/\1/p' |
		sort -n | tail -1)
	down=$(cat "${logs[@]}" | grep -c 'marking it down' || true)
	echo "leader logs: $stalls loop stalls (max ${max:-0} ms), $down nodes marked down"
	return "$rc"
}

case ${1:-} in
settle)
	shift
	bench_settle "$@"
	;;
bigslot)
	shift
	bench_bigslot "$@"
	;;
scale)
	shift
	bench_scale "$@"
	;;
failover)
	shift
	bench_failover "$@"
	;;
cluster)
	shift
	bench_cluster "$@"
	;;
rebalance)
	shift
	bench_rebalance "$@"
	;;
coord)
	shift
	bench_coord "$@"
	;;
engine)
	shift
	bench_engine "$@"
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
