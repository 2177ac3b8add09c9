#!/usr/bin/env bash
# setup.sh: install the Debian packages narf needs (only those missing), then
# configure and build build/ (and build-asan/ with --asan).
#
# Idempotent and quiet: when there is nothing to do it prints one line. The
# compiler's output is shown only when a build fails. Works from any cwd.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: scripts/setup.sh [--asan] [--help]

Installs the Debian packages narf needs (only the missing ones, with apt-get),
then configures (meson setup, first time only) and builds (ninja) build/.

  --asan    also configure and build build-asan/ with
            -Db_sanitize=address,undefined -Db_lundef=false
  --help    show this help

Prints one summary line when all is well; on a build failure prints the
compiler output and exits 1. Runs apt-get as root, or through sudo.
EOF
}

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"

asan=0
while (($#)); do
	case $1 in
	--asan) asan=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "setup.sh: unknown argument '$1' (try --help)" >&2
		exit 2
		;;
	esac
	shift
done

PACKAGES=(
	build-essential pkg-config meson ninja-build
	libraft-dev libuv1-dev libjansson-dev libssl-dev libcmocka-dev libhttp-parser-dev
	libedit-dev libjemalloc-dev
	redis-tools redis-server gnuplot-nox
	python3 python3-redis python3-pytest python3-pytest-xdist
	python3-prometheus-client iptables
	clang netcat-openbsd scdoc
	iproute2
)

done_msgs=()
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

die() {
	echo "setup.sh: $*" >&2
	exit 1
}

# --- packages ---------------------------------------------------------------

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ $status != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]})); then
	sudo_cmd=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 ||
			die "missing packages (${missing[*]}) and not root, no sudo: install them by hand"
		sudo_cmd=(sudo)
	fi
	echo "setup.sh: installing ${missing[*]}" >&2
	if ! "${sudo_cmd[@]}" apt-get update -q >"$tmp/apt.log" 2>&1 ||
		! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends "${missing[@]}" \
			>>"$tmp/apt.log" 2>&1; then
		cat "$tmp/apt.log" >&2
		die "apt-get failed (output above)"
	fi
	done_msgs+=("installed ${#missing[@]} package(s)")
fi

# --- configure and build ----------------------------------------------------

# Serialise concurrent runs (test.sh and cluster.sh both call us): two ninjas
# in one build dir corrupt its state. The lock lives outside the tree.
lock="${TMPDIR:-/tmp}/narf-setup-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1).lock"
if command -v flock >/dev/null 2>&1 && exec 9>>"$lock"; then
	flock 9
fi

# show_build_errors LOG: the build log without ninja's progress lines, so
# what remains is the failing commands and the compiler's messages.
show_build_errors() {
	grep -Ev '^\[[0-9]+/[0-9]+\] ' "$1" >&2 || cat "$1" >&2
}

# build_dir DIR [MESON_ARGS...]: configure DIR if needed, then build it.
build_dir() {
	local dir=$1
	shift
	local log="$tmp/$dir.log"
	if [[ ! -f $dir/build.ninja ]]; then
		local again=()
		# A failed configure leaves a dir meson sets up again as is;
		# a configured dir that lost build.ninja needs --reconfigure.
		[[ -f $dir/meson-private/coredata.dat ]] && again=(--reconfigure)
		if ! meson setup "${again[@]}" "$dir" "$@" >"$log" 2>&1; then
			cat "$log" >&2
			echo "setup.sh: meson setup $dir failed (output above)" >&2
			return 1
		fi
		done_msgs+=("configured $dir")
	fi
	if ! ninja -C "$dir" >"$log" 2>&1; then
		show_build_errors "$log"
		echo "setup.sh: build of $dir failed (compiler output above)" >&2
		return 1
	fi
	if ! grep -q '^ninja: no work to do' "$log"; then
		done_msgs+=("built $dir")
	fi
}

rc=0
build_dir build || rc=1
if ((asan)); then
	build_dir build-asan -Db_sanitize=address,undefined -Db_lundef=false ||
		rc=1
fi

if ((rc)); then
	exit 1
fi
if ((${#done_msgs[@]} == 0)); then
	echo "setup.sh: packages present, build up to date"
else
	msg=$(printf '%s, ' "${done_msgs[@]}")
	echo "setup.sh: ${msg%, }"
fi
