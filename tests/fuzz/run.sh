#!/bin/sh
# Build the libFuzzer target for the JSON line decoder and run it for
# FUZZ_SECONDS (default 30) from a small seed corpus of valid and invalid
# lines. Exits non-zero when libFuzzer finds a crash, a leak or an undefined
# behaviour report; the reproducer and the log are left in build-fuzz/.
#
#   tests/fuzz/run.sh                 # from anywhere in the repository
#   FUZZ_SECONDS=600 tests/fuzz/run.sh
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build-fuzz"
bin="$out/fuzz_frame"
log="$out/fuzz_frame.log"
seconds=${FUZZ_SECONDS:-30}

mkdir -p "$out"
cd "$root"
# shellcheck disable=SC2046 # pkg-config output is meant to be split
clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
	common/frame.c common/errors.c tests/fuzz/fuzz_frame.c \
	$(pkg-config --cflags --libs jansson libuv) -o "$bin"

corpus=$(mktemp -d "${TMPDIR:-/tmp}/narf-fuzz-frame.XXXXXX")
trap 'rm -rf "$corpus"' EXIT INT TERM

# Seed format (see fuzz_frame.c): one control byte, then 1-4 chunk sizes,
# then the stream. "\001\377" = limit 64, one size of 255 (whole lines);
# "\003\003" = limit 1 MiB, 3-byte reads; "\014\000\001\007\040" = limit 8,
# sizes 0, 1, 7, 32.
seed() {
	# shellcheck disable=SC2059 # the seed is the format: octal escapes
	printf "$2" >"$corpus/$1"
}
seed ping '\003\377{"op":"ping"}\n'
seed join '\003\003{"op":"join","addr":"127.0.0.1:7201","boot_id":"9f1c"}\n'
seed two '\002\377{"a":1}\r\n\n{"b":[1,2,{"c":null}]}\n'
seed escapes '\003\005{"s":"q\\"}{[\\\\","u":"\\u00e9\\n"}\n'
seed nested '\003\377{"a":{"a":{"a":{"a":[[[[[[[[[[[[1]]]]]]]]]]]]}}}}\n'
seed deep '\003\377[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]\n'
seed bad '\003\377{"a":}\n{"b":1}\n'
seed array '\003\377[1,2]\n42\n'
seed dup '\003\377{"a":1,"a":2}\n'
seed long "\\001\\377{\"k\":\"$(printf '%070d' 0)\"}\\n"
seed partial '\014\000\001\007\040{"op":"heartbeat","node":4'

# Make UBSan reports fatal so they count as findings, unless the caller
# chose otherwise.
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export UBSAN_OPTIONS

seeds=$(find "$corpus" -type f | wc -l)
rc=0
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix="$out/" "$corpus" >"$log" 2>&1 || rc=$?

grown=$(find "$corpus" -type f | wc -l)
runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
if [ "$rc" -eq 0 ]; then
	echo "fuzz_frame: ${runs:-?} runs in ${seconds}s from $seeds seeds" \
		"(corpus grew to $grown), no crash; log: $log"
else
	artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" |
		tail -n 1)
	echo "fuzz_frame: FAILED (exit $rc) within ${seconds}s;" \
		"reproducer: ${artifact:-none}; log: $log"
	tail -n 40 "$log" >&2
fi
exit "$rc"
