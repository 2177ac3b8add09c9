#!/usr/bin/env bash
# nemesis.sh: the partition test from the command line (DESIGN.md,
# "Partitions and pauses: what is tested"): every coordinator and data node
# on a network namespace of its own, rounds of faults (iptables cuts,
# SIGSTOP, kill -9, ...) under a recorded load, and a checker over the whole
# history. The work is scripts/lib/nemesis.py; this wrapper checks that it
# can run (root, ip, iptables, a build) and passes the arguments on.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
PY=/usr/bin/python3

case ${1:-} in
-h | --help)
	exec "$PY" "$ROOT/scripts/lib/nemesis.py" --help
	;;
esac

if ((EUID != 0)); then
	echo "nemesis.sh: must run as root: it creates network namespaces, a bridge and iptables rules (all removed at the end); try: sudo $0 $*" >&2
	exit 3
fi
command -v ip >/dev/null || {
	echo "nemesis.sh: 'ip' not found (Debian package iproute2)" >&2
	exit 3
}
command -v iptables-restore >/dev/null || {
	echo "nemesis.sh: 'iptables-restore' not found (Debian package iptables: apt-get install -y iptables)" >&2
	exit 3
}
exec "$PY" "$ROOT/scripts/lib/nemesis.py" "$@"
