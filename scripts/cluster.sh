#!/usr/bin/env bash
# cluster.sh: run a local narf cluster on 127.0.0.1 (DESIGN.md, "The
# command-line contract"): three coordinators and N data nodes, with pid
# files, logs and data under one directory, and the subcommands tests and
# benchmarks use to stop, inspect, kill and restart its members.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: scripts/cluster.sh COMMAND [ARGS] [--dir DIR]

commands:
  start [--nodes N] [--base-port P] [--fresh] [--no-setup] [--log-level L]
        [--tls] [--zones K]
        Runs scripts/setup.sh, starts 3 coordinators and N data nodes
        (default 3), and returns once a leader is elected (and, with data
        nodes, every slot is served and the slots' placement has settled:
        nothing moving or syncing). Prints CACHE_COORD=host:port,host:port,host:port.
          --fresh       wipe DIR's data, logs and pid files first (a new
                        cluster; without it a stopped cluster's coordinator
                        state in DIR is reused)
          --no-setup    do not run scripts/setup.sh (use the build as is)
          --log-level   passed to every process (default info)
          --tls         TLS on every link (coordinator API and Raft,
                        peer links, clients): makes a throwaway CA and
                        certificates in DIR/tls (see below) and prints
                        how to connect; the cluster stays TLS until a
                        --fresh start without it
          --zones K     give data node k the zone z((k-1) mod K + 1), so
                        nodes spread round robin over zones z1..zK (the
                        placement keeps a slot's copies in distinct
                        zones; default: every node in the host's zone)
  stop          SIGTERM every process started in DIR, SIGKILL after 5 s
  status        each coordinator's pid, liveness, role and term; each data
                node's pid; then `cachecli status` when cachecli is built.
                Exits 0 when a leader answers, 1 otherwise.
  kill-leader   kill -9 the coordinator leader; print its id (e.g. c2)
  kill-node ID  kill -9 one data node; print its id
  add-node      start one more data node (--join); print its id
  restart WHO   start a killed coordinator (cN) or data node (nK or ID)
                again with the same command line; waits until it answers
  pause WHO     SIGSTOP a coordinator (cN) or data node (nK or ID), for
                failure drills: the process keeps its sockets but answers
                nothing (as a hung host would); print its name
  resume WHO    SIGCONT a paused coordinator or data node; print its name

  --dir DIR     the cluster's directory (default: <repo>/run), holding
                cluster.env (base port, node count, build dir), logs/,
                data/, pids/

Logs: DIR/logs/NAME.log per process (c1.log..c3.log, n1.log, ...); start
and status print where they are. The binaries come from <repo>/build, or
from $NARF_BUILD when set at start (e.g. an ASan build); the cluster
remembers which.

Ports (P = base port, default 7000): coordinator i (1..3) API P+i and Raft
P+100+i; data node k RESP P+200+k. Data nodes are named nK after their slot
k (port P+200+k); kill-node and restart also take the map's numeric node id.
Everything listens on 127.0.0.1 only. With --tls, data node k also
serves TLS on P+300+k, the port it advertises in the map (redirects, CLUSTER
SLOTS), and the coordinators speak TLS only.

TLS files (--tls), made with the openssl command-line tool, keys mode 600:
DIR/tls/ca.crt (the CA), server.crt/server.key (one certificate for every
process, subjectAltName IP:127.0.0.1 and DNS:localhost), client.crt/
client.key (for operators and tools: every port requires a client
certificate from the CA). NARF_TLS_DIR=DIR/tls is what cachecli and
scripts/lib/coordping.py read to use them.
EOF
}

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
# set_build DIR: the binaries every subcommand runs and recognises.
set_build() {
	BUILD=$1
	COORD=$BUILD/coordinator/coord
	DATANODE=$BUILD/datanode/datanode
	CLI=$BUILD/cli/cachecli
}
set_build "$(realpath -m -- "${NARF_BUILD:-$ROOT/build}")"
PY=/usr/bin/python3
PING=("$PY" "$ROOT/scripts/lib/coordping.py")
NCOORD=3

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}
note() {
	echo "cluster.sh: $*" >&2
}

# --- arguments --------------------------------------------------------------

cmd=${1:-}
[[ -n $cmd ]] || {
	usage >&2
	exit 2
}
shift
case $cmd in
-h | --help | help)
	usage
	exit 0
	;;
start | stop | status | kill-leader | kill-node | add-node | restart | pause | resume) ;;
*)
	echo "cluster.sh: unknown command '$cmd' (commands: start stop status kill-leader kill-node add-node restart pause resume; try --help)" >&2
	exit 2
	;;
esac

DIR=$ROOT/run
opt_nodes=""
opt_port=""
opt_fresh=0
opt_setup=1
opt_loglevel=""
opt_tls=0
opt_zones=""
target=""
while (($#)); do
	case $1 in
	--dir)
		DIR=${2:?--dir needs a value}
		shift
		;;
	--dir=*) DIR=${1#*=} ;;
	--nodes)
		opt_nodes=${2:?--nodes needs a value}
		shift
		;;
	--nodes=*) opt_nodes=${1#*=} ;;
	--base-port)
		opt_port=${2:?--base-port needs a value}
		shift
		;;
	--base-port=*) opt_port=${1#*=} ;;
	--log-level)
		opt_loglevel=${2:?--log-level needs a value}
		shift
		;;
	--log-level=*) opt_loglevel=${1#*=} ;;
	--zones)
		opt_zones=${2:?--zones needs a value}
		shift
		;;
	--zones=*) opt_zones=${1#*=} ;;
	--fresh) opt_fresh=1 ;;
	--tls) opt_tls=1 ;;
	--no-setup) opt_setup=0 ;;
	-h | --help)
		usage
		exit 0
		;;
	-*)
		echo "cluster.sh: unknown option '$1' (try --help)" >&2
		exit 2
		;;
	*)
		[[ -z $target ]] || {
			echo "cluster.sh: unexpected argument '$1' (try --help)" >&2
			exit 2
		}
		target=$1
		;;
	esac
	shift
done

if [[ $cmd != start ]] &&
	[[ -n $opt_nodes$opt_port$opt_loglevel$opt_zones || $opt_fresh == 1 || $opt_setup == 0 || $opt_tls == 1 ]]; then
	echo "cluster.sh: --nodes, --base-port, --fresh, --no-setup, --log-level, --tls and --zones go with start only" >&2
	exit 2
fi
case $cmd in
kill-node | restart | pause | resume)
	[[ -n $target ]] || {
		echo "cluster.sh: $cmd needs an id (try --help)" >&2
		exit 2
	}
	;;
*)
	[[ -z $target ]] || {
		echo "cluster.sh: unexpected argument '$target' (try --help)" >&2
		exit 2
	}
	;;
esac

DIR=$(realpath -m -- "$DIR")
# The cluster secret (docs/security.md): the coordinators and operators
# prove it, data nodes the node key derived from it. Our own cachecli and
# coordping calls find it here (a path; the secret stays in the file).
SECRET_FILE=$DIR/cluster.secret
NODE_KEY_FILE=$DIR/node.key
export NARF_SECRET_FILE=$SECRET_FILE
ENVFILE=$DIR/cluster.env
# TLS (start --tls): the CA and certificates every process and tool uses.
TLS_DIR=$DIR/tls

is_uint() {
	[[ $1 =~ ^[0-9]{1,9}$ ]]
}
# in_range VAL MIN MAX: VAL is a number within MIN..MAX.
in_range() {
	is_uint "$1" && (($1 >= $2 && $1 <= $3))
}

# --- cluster.env ------------------------------------------------------------

BASE_PORT=""
NODES=""
LOG_LEVEL=""
TLS=0
ZONES=0

# load_env: read DIR/cluster.env (plain KEY=VALUE lines, never sourced).
load_env() {
	[[ -f $ENVFILE ]] || return 1
	local key val
	while IFS='=' read -r key val; do
		case $key in
		BASE_PORT) is_uint "$val" && BASE_PORT=$val ;;
		NODES) is_uint "$val" && NODES=$val ;;
		LOG_LEVEL) [[ $val =~ ^[a-z]+$ ]] && LOG_LEVEL=$val ;;
		TLS) [[ $val == 1 ]] && TLS=1 ;;
		ZONES) is_uint "$val" && ZONES=$val ;;
		BUILD) if [[ $val == /* ]]; then set_build "$val"; fi ;;
		esac
	done <"$ENVFILE"
	[[ -n $BASE_PORT && -n $NODES ]] || die "$ENVFILE is damaged"
	[[ -n $LOG_LEVEL ]] || LOG_LEVEL=info
	tls_env
}

# tls_env: with TLS, our own cachecli and coordping calls use DIR/tls.
tls_env() {
	if ((TLS)); then
		export NARF_TLS_DIR=$TLS_DIR
	fi
}

need_env() {
	load_env || die "no cluster in $DIR (no cluster.env; run: scripts/cluster.sh start --dir $DIR)"
}

save_env() {
	mkdir -p "$DIR"
	printf '# written by scripts/cluster.sh; read by its other subcommands\nBASE_PORT=%s\nNODES=%s\nLOG_LEVEL=%s\nBUILD=%s\nTLS=%s\nZONES=%s\n' \
		"$BASE_PORT" "$NODES" "$LOG_LEVEL" "$BUILD" "$TLS" "$ZONES" >"$ENVFILE.tmp"
	mv -f "$ENVFILE.tmp" "$ENVFILE"
}

# --- ports and command lines ------------------------------------------------

api_port() { echo $((BASE_PORT + $1)); }
raft_port() { echo $((BASE_PORT + 100 + $1)); }
node_port() { echo $((BASE_PORT + 200 + $1)); }
node_tls_port() { echo $((BASE_PORT + 300 + $1)); }

api_addrs() { # space-separated API addresses of the coordinators
	local i out=()
	for ((i = 1; i <= NCOORD; i++)); do
		out+=("127.0.0.1:$(api_port "$i")")
	done
	echo "${out[*]}"
}
coord_list() { # comma-separated, the CACHE_COORD form
	local a
	a=$(api_addrs)
	echo "${a// /,}"
}
members() {
	local i out=()
	for ((i = 1; i <= NCOORD; i++)); do
		out+=("$i=127.0.0.1:$(raft_port "$i")/127.0.0.1:$(api_port "$i")")
	done
	local IFS=,
	echo "${out[*]}"
}

# tls_files: the certificate flags every process takes (with TLS).
tls_files() {
	TLS_FLAGS=(--tls-cert-file "$TLS_DIR/server.crt" --tls-key-file "$TLS_DIR/server.key"
		--tls-ca-cert-file "$TLS_DIR/ca.crt")
}

# coord_cmd I: sets CMD to coordinator I's command line.
coord_cmd() {
	CMD=("$COORD" --id "$1" --data-dir "$DIR/data/c$1" --members "$(members)"
		--cluster-secret-file "$SECRET_FILE" --log-level "$LOG_LEVEL")
	if ((TLS)); then
		tls_files
		CMD+=(--tls-cluster yes "${TLS_FLAGS[@]}")
	fi
}
# node_cmd K: sets CMD to data node K's command line.
node_cmd() {
	CMD=("$DATANODE" --port "$(node_port "$1")" --join "$(coord_list)"
		--cluster-secret-file "$NODE_KEY_FILE" --log-level "$LOG_LEVEL")
	if ((ZONES > 0)); then
		CMD+=(--zone "z$((($1 - 1) % ZONES + 1))")
	fi
	if ((TLS)); then
		tls_files
		CMD+=(--tls-port "$(node_tls_port "$1")" "${TLS_FLAGS[@]}" --tls-cluster yes)
	fi
}

# make_certs: with TLS, a throwaway CA, one server certificate for every
# process (127.0.0.1 and localhost) and a client certificate for operators,
# unless DIR/tls has them (a restart keeps them). Keys readable by us alone.
make_certs() {
	((TLS)) || return 0
	[[ -s $TLS_DIR/ca.crt && -s $TLS_DIR/server.key && -s $TLS_DIR/client.key ]] && return 0
	command -v openssl >/dev/null || die "--tls needs the openssl command-line tool"
	mkdir -p "$TLS_DIR"
	(
		set -e
		umask 077
		cd "$TLS_DIR"
		rm -f ./*.crt ./*.key ./*.csr ./*.ext ./*.srl
		ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
		openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 365 \
			-subj "/CN=narf cluster.sh CA" 2>/dev/null
		openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=narf server" 2>/dev/null
		echo "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
			-out server.crt -days 365 -extfile server.ext 2>/dev/null
		openssl req "${ec[@]}" -keyout client.key -out client.csr -subj "/CN=narf operator" 2>/dev/null
		echo "extendedKeyUsage=clientAuth" >client.ext
		openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
			-out client.crt -days 365 -extfile client.ext 2>/dev/null
		rm -f ./*.csr ./*.ext
		chmod 644 ./*.crt
	) || die "cannot make the TLS certificates in $TLS_DIR (openssl failed)"
}

# coord_tls: the coordinator takes --tls-cluster (its TLS branch).
# has_tls_cluster BINARY: its --help names --tls-cluster. (Read whole
# first: with pipefail, `| grep -q` can fail on the SIGPIPE the binary gets
# when grep stops reading early.)
has_tls_cluster() {
	local help
	help=$("$1" --help 2>&1) || true
	[[ $help == *--tls-cluster* ]]
}

coord_tls() {
	has_tls_cluster "$COORD"
}

# make_secret: a new random cluster secret and its node key, readable by
# us alone, unless the cluster already has them (a restart keeps them).
make_secret() {
	[[ -s $SECRET_FILE && -s $NODE_KEY_FILE ]] && return 0
	mkdir -p "$DIR"
	(
		umask 077
		head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SECRET_FILE.tmp" &&
			echo >>"$SECRET_FILE.tmp" &&
			mv -f "$SECRET_FILE.tmp" "$SECRET_FILE" &&
			"$CLI" --secret-file "$SECRET_FILE" node-key >"$NODE_KEY_FILE.tmp" &&
			mv -f "$NODE_KEY_FILE.tmp" "$NODE_KEY_FILE"
	) || die "cannot create the cluster secret in $DIR"
}

# --- processes --------------------------------------------------------------

# read_pid NAME: the pid recorded for NAME (c1, n2, ...), or nothing.
read_pid() {
	local f=$DIR/pids/$1.pid pid=""
	if [[ -f $f ]]; then
		read -r pid <"$f" 2>/dev/null || true
	fi
	is_uint "${pid:-x}" && echo "$pid"
	return 0
}

# ours_alive NAME PID: true when PID is running (not a zombie) and is the
# process we started as NAME: its argv holds this tree's coord/datanode
# binary and NAME's data dir (coordinator) or port (data node). Guards
# against killing an unrelated process that reused the pid.
ours_alive() {
	local name=$1 pid=$2 stat state args
	[[ -r /proc/$pid/stat ]] || return 1
	stat=$(<"/proc/$pid/stat") 2>/dev/null || return 1
	state=${stat##*) }
	state=${state%% *}
	[[ $state != Z && $state != X ]] || return 1
	args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	case $name in
	c*)
		grep -qxF -- "$COORD" <<<"$args" &&
			grep -qxF -- "$DIR/data/$name" <<<"$args"
		;;
	n*)
		grep -qxF -- "$DATANODE" <<<"$args" &&
			grep -qxF -- "$(node_port "${name#n}")" <<<"$args"
		;;
	*) return 1 ;;
	esac
}

# alive_pid NAME: prints NAME's pid when it is alive and ours.
alive_pid() {
	local pid
	pid=$(read_pid "$1")
	[[ -n $pid ]] && ours_alive "$1" "$pid" && echo "$pid"
	return 0
}

port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# launch NAME: start CMD in its own session, detached, output appended to
# DIR/logs/NAME.log; the child writes its own pid (it then execs CMD, so
# the pid is CMD's).
launch() {
	local name=$1 pidf=$DIR/pids/$1.pid log=$DIR/logs/$1.log
	mkdir -p "$DIR/pids" "$DIR/logs"
	rm -f "$pidf"
	printf '=== %s cluster.sh: %s\n' "$(date '+%F %T')" "${CMD[*]}" >>"$log"
	# shellcheck disable=SC2016 # $$ and $0 belong to the inner bash
	setsid nohup bash -c 'echo $$ >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' \
		"$pidf" "${CMD[@]}" >>"$log" 2>&1 </dev/null &
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $pidf ]] && return 0
		sleep 0.05
	done
	die "$name did not start (no pid file after 5 s; see $log)"
}

start_coord() {
	[[ -x $COORD ]] || die "$COORD is not built (run scripts/setup.sh)"
	mkdir -p "$DIR/data/c$1"
	coord_cmd "$1"
	launch "c$1"
}

start_node() {
	need_datanode
	node_cmd "$1"
	launch "n$1"
}

# datanode_joins: the datanode is built and can join a cluster (its --help
# documents --join; until the cluster issue it only runs standalone).
datanode_joins() {
	[[ -x $DATANODE ]] && "$DATANODE" --help 2>/dev/null | grep -q -- '--join'
}

need_datanode() {
	datanode_joins ||
		die "datanode cannot join a cluster yet (missing, or standalone only: $DATANODE --standalone --port 6379)"
}

# wait_port PORT SECS: until something listens on 127.0.0.1:PORT.
wait_port() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		port_in_use "$1" && return 0
		sleep 0.05
	done
	return 1
}

log_tails() {
	local f
	for f in "$@"; do
		[[ -f $f ]] || continue
		echo "--- last lines of $f" >&2
		tail -n 15 "$f" >&2
	done
}

# stop_all: SIGTERM every live pid in DIR/pids, SIGKILL what is left after
# 5 s, remove the pid files. Prints what it stopped.
stop_all() {
	local f name pid pids=() names=()
	shopt -s nullglob
	for f in "$DIR"/pids/*.pid; do
		name=$(basename "$f" .pid)
		pid=$(read_pid "$name")
		if [[ -n $pid ]] && ours_alive "$name" "$pid"; then
			kill -TERM "$pid" 2>/dev/null || true
			# A paused process handles SIGTERM only once it runs.
			kill -CONT "$pid" 2>/dev/null || true
			pids+=("$pid")
			names+=("$name")
		fi
	done
	local i j left
	for ((i = 0; i < 100 && ${#pids[@]}; i++)); do
		left=0
		for ((j = 0; j < ${#pids[@]}; j++)); do
			ours_alive "${names[j]}" "${pids[j]}" && left=1
		done
		((left)) || break
		sleep 0.05
	done
	for ((j = 0; j < ${#pids[@]}; j++)); do
		if ours_alive "${names[j]}" "${pids[j]}"; then
			note "${names[j]} (pid ${pids[j]}) ignored SIGTERM for 5 s: SIGKILL"
			kill -KILL "${pids[j]}" 2>/dev/null || true
		fi
	done
	rm -f "$DIR"/pids/*.pid
	shopt -u nullglob
	if ((${#names[@]})); then
		note "stopped ${names[*]} ($DIR)"
	else
		note "nothing running in $DIR"
	fi
}

# wait_leader SECS: prints the leader's ping line once one is elected; fails
# after SECS, or as soon as fewer than a majority of coordinators run.
wait_leader() {
	local addrs i n end=$((SECONDS + $1))
	read -ra addrs <<<"$(api_addrs)"
	while ((SECONDS < end)); do
		"${PING[@]}" --wait-leader --timeout 1 "${addrs[@]}" 2>/dev/null &&
			return 0
		n=0
		for ((i = 1; i <= NCOORD; i++)); do
			[[ -z $(alive_pid "c$i") ]] || n=$((n + 1))
		done
		if ((n <= NCOORD / 2)); then
			note "only $n of $NCOORD coordinators are running"
			return 1
		fi
	done
	return 1
}

# --- subcommands ------------------------------------------------------------

cmd_start() {
	local had_env=0
	if load_env; then
		had_env=1
	fi
	local f name pid
	shopt -s nullglob
	for f in "$DIR"/pids/*.pid; do
		name=$(basename "$f" .pid)
		pid=$(alive_pid "$name")
		[[ -z $pid ]] ||
			die "a cluster is already running in $DIR ($name is pid $pid); run: scripts/cluster.sh stop --dir $DIR"
	done
	shopt -u nullglob
	# A new start runs the binaries of $NARF_BUILD (or build/), whatever
	# the last cluster in DIR ran.
	set_build "$(realpath -m -- "${NARF_BUILD:-$ROOT/build}")"

	if [[ -n $opt_port ]]; then
		in_range "$opt_port" 1024 65000 ||
			die "--base-port must be a number in 1024..65000"
		if ((had_env && !opt_fresh)) && [[ $opt_port != "$BASE_PORT" ]] &&
			[[ -d $DIR/data ]]; then
			die "$DIR holds a cluster on base port $BASE_PORT; use that port, --fresh, or another --dir"
		fi
		BASE_PORT=$opt_port
	fi
	BASE_PORT=${BASE_PORT:-7000}
	LOG_LEVEL=${opt_loglevel:-${LOG_LEVEL:-info}}
	[[ $LOG_LEVEL =~ ^[a-z]+$ ]] || die "bad --log-level '$LOG_LEVEL'"

	if ((opt_setup)); then
		"$ROOT/scripts/setup.sh" >&2 || die "scripts/setup.sh failed; not starting"
	fi
	[[ -x $COORD ]] || die "$COORD is not built (scripts/setup.sh did not produce it)"

	if [[ -n $opt_nodes ]]; then
		in_range "$opt_nodes" 0 99 ||
			die "--nodes must be a number in 0..99"
		if ((opt_nodes > 0)) && ! datanode_joins; then
			die "--nodes $opt_nodes: datanode cannot join a cluster yet; use --nodes 0 (or run $DATANODE --standalone)"
		fi
		NODES=$opt_nodes
	elif datanode_joins; then
		NODES=3
	else
		NODES=0
		note "datanode cannot join a cluster yet: starting the coordinators only (--nodes 0); a standalone cache: $DATANODE --standalone --port 6379"
	fi

	if [[ -n $opt_zones ]]; then
		in_range "$opt_zones" 0 99 ||
			die "--zones must be a number in 0..99 (0: the host's zone)"
		ZONES=$opt_zones
	elif ((opt_fresh)); then
		ZONES=0
	fi

	local i port
	for ((i = 1; i <= NCOORD; i++)); do
		for port in "$(api_port "$i")" "$(raft_port "$i")"; do
			port_in_use "$port" && die "port $port is in use (pick another --base-port)"
		done
	done
	for ((i = 1; i <= NODES; i++)); do
		port=$(node_port "$i")
		port_in_use "$port" && die "port $port is in use (pick another --base-port)"
	done

	if ((opt_fresh)); then
		rm -rf "$DIR/data" "$DIR/logs" "$DIR/pids" "$TLS_DIR"
		TLS=0
	fi
	if ((opt_tls)); then
		if ((had_env && !opt_fresh && !TLS)) && [[ -d $DIR/data ]]; then
			die "$DIR holds a cluster without TLS; use --fresh, or another --dir"
		fi
		TLS=1
	fi
	if ((TLS)); then
		coord_tls || die "--tls: $COORD has no --tls-cluster (this build's coordinator cannot speak TLS)"
		has_tls_cluster "$DATANODE" || ((NODES == 0)) ||
			die "--tls: $DATANODE has no --tls-cluster (this build's data node cannot use TLS on its peer links)"
		for ((i = 1; i <= NODES; i++)); do
			port=$(node_tls_port "$i")
			port_in_use "$port" && die "port $port is in use (pick another --base-port)"
		done
	fi
	save_env
	make_secret
	make_certs
	tls_env

	for ((i = 1; i <= NCOORD; i++)); do
		start_coord "$i"
	done
	local addrs leader
	read -ra addrs <<<"$(api_addrs)"
	if ! leader=$(wait_leader 20); then
		log_tails "$DIR"/logs/c*.log
		stop_all
		die "no coordinator leader elected (log tails above); stopped"
	fi
	leader=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$leader")

	if ((NODES > 0)); then
		for ((i = 1; i <= NODES; i++)); do
			start_node "$i"
		done
		if ! "${PING[@]}" --wait-ready "$NODES" --timeout 120 "${addrs[@]}" >/dev/null; then
			log_tails "$DIR"/logs/*.log
			stop_all
			die "data nodes not up / slots not all placed within 120 s (log tails above); stopped"
		fi
	fi

	# Paths as the user can type them from where they are.
	local top=$ROOT/
	[[ $PWD != "$ROOT" ]] || top=""
	local cli=${top}build/cli/cachecli
	[[ $BUILD == "$ROOT/build" ]] || cli=$CLI
	if ((TLS)); then
		cat <<EOF
narf cluster ready in $DIR: leader c$leader, $NCOORD coordinators, $NODES data node(s), TLS everywhere
CACHE_COORD=$(coord_list)
NARF_SECRET_FILE=$SECRET_FILE
NARF_TLS_DIR=$TLS_DIR
  export those three lines, then:  $cli status
  or name the files:  $cli --tls --cacert $TLS_DIR/ca.crt --cert $TLS_DIR/client.crt --key $TLS_DIR/client.key status
  redis-cli:  redis-cli -c --tls --cacert $TLS_DIR/ca.crt --cert $TLS_DIR/client.crt --key $TLS_DIR/client.key -p $(node_tls_port 1)
  (data node k's TLS port is $((BASE_PORT + 300))+k; every port requires a client certificate from
   $TLS_DIR/ca.crt and proves the cluster secret; data nodes hold $NODE_KEY_FILE)
  logs:  $DIR/logs/
$(log_list)
  stop:  ${top}scripts/cluster.sh stop --dir $DIR
EOF
		return 0
	fi
	cat <<EOF
narf cluster ready in $DIR: leader c$leader, $NCOORD coordinators, $NODES data node(s)
CACHE_COORD=$(coord_list)
NARF_SECRET_FILE=$SECRET_FILE
  export those two lines, then:  $cli status
  (every port proves the cluster secret; data nodes hold $NODE_KEY_FILE)
  logs:  $DIR/logs/
$(log_list)
  stop:  ${top}scripts/cluster.sh stop --dir $DIR
EOF
}

# log_list: one line per kind of process, naming its log files.
log_list() {
	local i c=() n=()
	for ((i = 1; i <= NCOORD; i++)); do
		c+=("c$i.log")
	done
	for ((i = 1; i <= NODES; i++)); do
		n+=("n$i.log")
	done
	printf '         %s (coordinators)\n' "${c[*]}"
	if ((NODES > 0)); then
		printf '         %s (data nodes)\n' "${n[*]}"
	fi
}

cmd_stop() {
	[[ -d $DIR ]] || {
		note "nothing running in $DIR"
		return 0
	}
	if ! load_env; then
		BASE_PORT=7000 # only needed to recognise data nodes by port
		NODES=0
	fi
	stop_all
}

# proc_state PID: the one-letter state of PID (R, S, T when stopped, ...).
proc_state() {
	local stat
	stat=$(<"/proc/$1/stat") 2>/dev/null || return 0
	stat=${stat##*) }
	echo "${stat%% *}"
}

# member_state NAME: sets pid and state (stopped, alive, paused, dead) of
# a coordinator or data node.
member_state() {
	pid=$(read_pid "$1")
	if [[ -z $pid ]]; then
		state=stopped
		pid=-
	elif ours_alive "$1" "$pid"; then
		state=alive
		[[ $(proc_state "$pid") != T ]] || state=paused
	else
		state=dead
	fi
}

cmd_status() {
	need_env
	local i pid state addr line role term found=0
	local fmt='%-4s %-8s %-7s %-11s %-6s %-16s %s\n'
	# shellcheck disable=SC2059 # the format is ours
	printf "$fmt" ID PID STATE ROLE TERM ADDR LOG
	for ((i = 1; i <= NCOORD; i++)); do
		addr=127.0.0.1:$(api_port "$i")
		member_state "c$i"
		role=- term=-
		line=""
		if [[ $state != paused ]]; then
			line=$("${PING[@]}" --timeout 1 "$addr" 2>/dev/null || true)
		fi
		if [[ $line == *'"reachable":true'* ]]; then
			role=$(sed -n 's/.*"role":"\([a-z]*\)".*/\1/p' <<<"$line")
			term=$(sed -n 's/.*"term":\([0-9]*\).*/\1/p' <<<"$line")
			[[ $role == leader ]] && found=1
		elif [[ $state == alive ]]; then
			role=unreachable
		fi
		# shellcheck disable=SC2059
		printf "$fmt" "c$i" "$pid" "$state" "${role:--}" "${term:--}" \
			"$addr" "$DIR/logs/c$i.log"
	done
	for ((i = 1; i <= NODES; i++)); do
		member_state "n$i"
		# shellcheck disable=SC2059
		printf "$fmt" "n$i" "$pid" "$state" datanode - \
			"127.0.0.1:$(node_port "$i")" "$DIR/logs/n$i.log"
	done
	echo "logs: $DIR/logs/ (coordinators: API address shown; Raft port = API + 100)"
	if [[ -x $CLI ]] && ((found)); then
		echo
		"$CLI" --coord "$(coord_list)" status ||
			note "cachecli status exited with status $?"
	fi
	((found)) || {
		note "no coordinator answers as leader"
		return 1
	}
}

cmd_kill_leader() {
	need_env
	local addrs line id pid
	read -ra addrs <<<"$(api_addrs)"
	line=$("${PING[@]}" --wait-leader --timeout 5 "${addrs[@]}") ||
		die "no leader found"
	id=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$line")
	[[ -n $id ]] || die "leader's ping reply has no id: $line"
	pid=$(alive_pid "c$id")
	[[ -n $pid ]] || die "the leader is c$id, but no live process of ours is recorded for it in $DIR/pids"
	kill -KILL "$pid"
	wait_gone "c$id" "$pid"
	echo "c$id"
}

# wait_gone NAME PID: up to 2 s until PID is gone.
wait_gone() {
	local i
	for ((i = 0; i < 40; i++)); do
		ours_alive "$1" "$2" || return 0
		sleep 0.05
	done
	die "$1 (pid $2) still alive after SIGKILL"
}

# node_slot ID: prints K for a data node given as nK, or as the map's node
# id (looked up in the leader's status by its address).
node_slot() {
	local id=$1 addr port
	if [[ $id =~ ^n([0-9]+)$ ]]; then
		echo "${BASH_REMATCH[1]}"
		return
	fi
	is_uint "$id" || die "bad data node id '$id' (want nK or a node id)"
	local addrs
	read -ra addrs <<<"$(api_addrs)"
	addr=$("${PING[@]}" --timeout 5 --node-addr "$id" "${addrs[@]}") ||
		die "cannot find data node $id in the map"
	port=${addr##*:}
	in_range "$port" $((BASE_PORT + 201)) $((BASE_PORT + 299)) ||
		die "data node $id ($addr) is not one of this cluster's slots"
	echo $((port - BASE_PORT - 200))
}

cmd_kill_node() {
	need_env
	need_datanode
	local k pid
	k=$(node_slot "$target")
	pid=$(alive_pid "n$k")
	[[ -n $pid ]] || die "data node n$k is not running"
	kill -KILL "$pid"
	wait_gone "n$k" "$pid"
	echo "n$k"
}

cmd_add_node() {
	need_env
	need_datanode
	local k=$((NODES + 1))
	((k <= 99)) || die "no free data node slot (99 max)"
	port_in_use "$(node_port "$k")" && die "port $(node_port "$k") is in use"
	NODES=$k
	save_env
	start_node "$k"
	wait_port "$(node_port "$k")" 10 || {
		log_tails "$DIR/logs/n$k.log"
		die "n$k does not listen on port $(node_port "$k") after 10 s"
	}
	echo "n$k"
}

cmd_restart() {
	need_env
	local pid
	if [[ $target =~ ^c([0-9]+)$ ]]; then
		local i=${BASH_REMATCH[1]}
		((i >= 1 && i <= NCOORD)) || die "no coordinator $target (c1..c$NCOORD)"
		pid=$(alive_pid "c$i")
		[[ -z $pid ]] || die "c$i is running (pid $pid)"
		local port
		for port in "$(api_port "$i")" "$(raft_port "$i")"; do
			port_in_use "$port" && die "port $port is in use"
		done
		start_coord "$i"
		local end=$((SECONDS + 20)) addr
		addr=127.0.0.1:$(api_port "$i")
		until "${PING[@]}" --wait-up --timeout 1 "$addr" >/dev/null 2>&1; do
			if [[ -z $(alive_pid "c$i") ]] || ((SECONDS >= end)); then
				log_tails "$DIR/logs/c$i.log"
				die "c$i does not answer ping on $addr (log tail above)"
			fi
		done
		note "c$i restarted (pid $(read_pid "c$i")); log $DIR/logs/c$i.log"
		return
	fi
	need_datanode
	local k
	k=$(node_slot "$target")
	pid=$(alive_pid "n$k")
	[[ -z $pid ]] || die "n$k is running (pid $pid)"
	port_in_use "$(node_port "$k")" && die "port $(node_port "$k") is in use"
	start_node "$k"
	wait_port "$(node_port "$k")" 10 || {
		log_tails "$DIR/logs/n$k.log"
		die "n$k does not listen on port $(node_port "$k") after 10 s"
	}
	note "n$k restarted (pid $(read_pid "n$k")); log $DIR/logs/n$k.log"
}

# who_name WHO: prints the name (cN or nK) of the coordinator or data node
# WHO (cN, nK, or a data node's id in the map).
who_name() {
	if [[ $1 =~ ^c([0-9]+)$ ]]; then
		local i=${BASH_REMATCH[1]}
		((i >= 1 && i <= NCOORD)) || die "no coordinator $1 (c1..c$NCOORD)"
		echo "c$i"
		return
	fi
	local k
	k=$(node_slot "$1")
	echo "n$k"
}

# wait_stopped PID YES: up to 2 s until PID is stopped (YES=1) or no longer
# stopped (YES=0).
wait_stopped() {
	local i st
	for ((i = 0; i < 40; i++)); do
		st=$(proc_state "$1")
		if (($2)); then
			[[ $st == T ]] && return 0
		else
			[[ $st != T ]] && return 0
		fi
		sleep 0.05
	done
	return 1
}

cmd_pause() {
	need_env
	local name pid
	name=$(who_name "$target")
	pid=$(alive_pid "$name")
	[[ -n $pid ]] || die "$name is not running"
	if [[ $(proc_state "$pid") == T ]]; then
		note "$name (pid $pid) is already paused"
	else
		kill -STOP "$pid"
		wait_stopped "$pid" 1 ||
			die "$name (pid $pid) is not stopped 2 s after SIGSTOP"
		note "$name (pid $pid) paused (SIGSTOP); resume: scripts/cluster.sh resume $name --dir $DIR"
	fi
	echo "$name"
}

cmd_resume() {
	need_env
	local name pid
	name=$(who_name "$target")
	pid=$(alive_pid "$name")
	[[ -n $pid ]] || die "$name is not running"
	if [[ $(proc_state "$pid") != T ]]; then
		note "$name (pid $pid) is not paused"
	else
		kill -CONT "$pid"
		wait_stopped "$pid" 0 ||
			die "$name (pid $pid) is still stopped 2 s after SIGCONT"
		note "$name (pid $pid) resumed (SIGCONT)"
	fi
	echo "$name"
}

case $cmd in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
kill-leader) cmd_kill_leader ;;
kill-node) cmd_kill_node ;;
add-node) cmd_add_node ;;
restart) cmd_restart ;;
pause) cmd_pause ;;
resume) cmd_resume ;;
esac
