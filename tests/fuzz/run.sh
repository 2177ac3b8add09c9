#!/bin/sh
# Build the libFuzzer targets (the JSON line decoder, fuzz_frame, the
# RESP request parser, fuzz_resp, the /metrics HTTP head reader,
# fuzz_http, and the Raft port's handshake frames, fuzz_raft_hs) and run
# each from a small seed corpus of valid and invalid input. FUZZ_SECONDS
# (default 30) is the whole budget, split evenly between the targets run.
# Prints one summary line per target and exits non-zero when libFuzzer
# finds a crash, a leak or an undefined behaviour report in any of them;
# reproducers and logs are left in build-fuzz/.
#
#   tests/fuzz/run.sh                 # all targets, from anywhere in the repo
#   FUZZ_SECONDS=600 tests/fuzz/run.sh
#   tests/fuzz/run.sh resp            # only fuzz_resp, with the whole budget
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build-fuzz"
seconds=${FUZZ_SECONDS:-30}
targets=${*:-frame resp http raft_hs}

ntargets=$(echo "$targets" | wc -w)
each=$((seconds / ntargets))
[ "$each" -ge 1 ] || each=1

mkdir -p "$out"
cd "$root"

# Make UBSan reports fatal so they count as findings, unless the caller
# chose otherwise.
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export UBSAN_OPTIONS

corpus_root=$(mktemp -d "${TMPDIR:-/tmp}/narf-fuzz.XXXXXX")
trap 'rm -rf "$corpus_root"' EXIT INT TERM

seed() {
	# shellcheck disable=SC2059 # the seed is the format: octal escapes
	printf "$2" >"$corpus/$1"
}

# Seed format (see fuzz_frame.c): one control byte, then 1-4 chunk sizes,
# then the stream. "\001\377" = limit 64, one size of 255 (whole lines);
# "\003\003" = limit 1 MiB, 3-byte reads; "\014\000\001\007\040" = limit 8,
# sizes 0, 1, 7, 32.
seeds_frame() {
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
}

# Seed format (see fuzz_resp.c): chunk sizes in the two nibbles of byte 0
# (0 = the rest), limits in byte 1 ("\377" = all defaults; "\000" = bulks
# up to 0 bytes, 1 argument, inline lines up to 0 bytes), then the stream.
# shellcheck disable=SC2016 # the '$' of bulk lengths is literal
seeds_resp() {
	seed get '\000\377*2\r\n$3\r\nGET\r\n$1\r\nk\r\n'
	seed bytes '\021\377*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\000\r\n\n\r\n'
	seed pipe '\043\377PING\r\n*0\r\n*-1\r\n\r\n*1\r\n$4\r\nPING\r\n'
	seed inline '\057\377set "a b" \047c\\\047d\047 "\\x41\\n\\q"\n'
	seed quotes '\000\377GET "abc\r\n'
	seed nested '\000\377*1\r\n*1\r\n$1\r\na\r\n'
	seed neg '\000\377*1\r\n$-1\r\n'
	seed huge '\000\377*1\r\n$99999999999999999999\r\n'
	seed nocrlf '\000\377*1\r\n$3\r\nfooXY'
	seed small '\061\000*2\r\n$1\r\na\r\n'
	seed limits '\021\225*2\r\n$3\r\nabc\r\n$0\r\n\r\nabcdef\n'
	seed toobig "\\002\\040*$(printf '%080d' 1)"
}

# Seed format (see fuzz_http.c): byte 0 = head limit (bits 0-1) and read
# size (bits 2-7, 0 = whole), then what the client sends.
seeds_http() {
	seed scrape '\003GET /metrics HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n'
	seed bytes '\007GET /metrics?x=1 HTTP/1.0\r\n\r\n'
	seed head '\013HEAD http://h:1/metrics HTTP/1.1\r\n\r\n'
	seed post '\003POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc'
	seed small '\001GET /metrics HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaa\r\n\r\n'
	seed garbage '\003\026\003\001\002\000\001\000'
	seed v09 '\003GET /\r\n\r\n'
	seed v2 '\003GET / HTTP/2.0\r\n\r\n'
	seed fold '\003GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n'
}

# Seed format (see fuzz_raft_hs.c): byte 0 picks the step (0 server, 1
# client, 2-3 the bare parsers), then what the peer sent.
hello_frame() {
	printf 'NRFT\001\003\000\000\000\000\000\000\000\000\000\002'
	printf '0123456789abcdef127.0.0.1:7102'
	head -c 50 /dev/zero
}

seeds_raft_hs() {
	{ printf '\000'; hello_frame; head -c 32 /dev/zero; } >"$corpus/server"
	{ printf '\000'; hello_frame | head -c 50; } >"$corpus/short"
	{ printf '\002'; hello_frame; } >"$corpus/hello"
	{
		printf '\001NRFT\001\000\000\000'
		head -c 48 /dev/zero
		printf '\006'
	} >"$corpus/challenge"
	{ printf '\003NRFT\001\000\000\000'; head -c 48 /dev/zero; } \
		>"$corpus/chal_parse"
	# libraft's own preamble (protocol 1, id 9, 16 address bytes)
	{
		printf '\002\001\000\000\000\000\000\000\000\011\000\000\000'
		printf '\000\000\000\000\020\000\000\000\000\000\000\000'
		printf '127.0.0.1:9999\000\000'
	} >"$corpus/stock"
}

build_raft_hs() {
	# shellcheck disable=SC2046 # pkg-config output is meant to be split
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
		coordinator/raft_hs.c common/auth.c common/errors.c \
		common/map.c common/map_json.c common/flags.c common/slot.c \
		tests/fuzz/fuzz_raft_hs.c \
		$(pkg-config --cflags --libs libcrypto jansson) -o "$1"
}

build_http() {
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
		common/http.c common/buf.c common/errors.c \
		tests/fuzz/fuzz_http.c -lhttp_parser -o "$1"
}

build_frame() {
	# shellcheck disable=SC2046 # pkg-config output is meant to be split
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
		common/frame.c common/errors.c tests/fuzz/fuzz_frame.c \
		$(pkg-config --cflags --libs jansson libuv) -o "$1"
}

build_resp() {
	# shellcheck disable=SC2046 # pkg-config output is meant to be split
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
		common/resp.c common/buf.c common/errors.c common/flags.c \
		tests/fuzz/fuzz_resp.c \
		$(pkg-config --cflags --libs libuv jansson) -o "$1"
}

# Build and run one target; prints its summary line, returns its status.
run_target() {
	name=fuzz_$1
	bin="$out/$name"
	log="$out/$name.log"
	corpus="$corpus_root/$1"

	mkdir -p "$corpus"
	# Called from an || list, where set -e does not apply: check here.
	case $1 in
	frame) build_frame "$bin" && seeds_frame ;;
	resp) build_resp "$bin" && seeds_resp ;;
	http) build_http "$bin" && seeds_http ;;
	raft_hs) build_raft_hs "$bin" && seeds_raft_hs ;;
	esac || {
		echo "$name: FAILED to build"
		return 1
	}
	seeds=$(find "$corpus" -type f | wc -l)
	rc=0
	"$bin" -max_total_time="$each" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$out/$name-" "$corpus" >"$log" 2>&1 || rc=$?
	grown=$(find "$corpus" -type f | wc -l)
	runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
	if [ "$rc" -eq 0 ]; then
		echo "$name: ${runs:-?} runs in ${each}s from $seeds seeds" \
			"(corpus grew to $grown), no crash; log: $log"
	else
		artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' \
			"$log" | tail -n 1)
		echo "$name: FAILED (exit $rc) within ${each}s;" \
			"reproducer: ${artifact:-none}; log: $log"
		tail -n 40 "$log" >&2
	fi
	return "$rc"
}

status=0
for t in $targets; do
	case $t in
	frame | resp | http | raft_hs) ;;
	*)
		echo "run.sh: unknown target '$t' (frame, resp, http, raft_hs)" >&2
		exit 2
		;;
	esac
	run_target "$t" || status=$?
done
exit "$status"
