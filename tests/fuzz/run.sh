#!/bin/sh
# Build the libFuzzer targets and run each from a small seed corpus of
# valid and invalid input:
#   frame     fuzz_frame.c     the coordinator API's JSON line decoder
#   resp      fuzz_resp.c      the data nodes' RESP request parser
#   http      fuzz_http.c      the /metrics HTTP head reader
#   raft_hs   fuzz_raft_hs.c   the Raft port's handshake frames
#   map_json  fuzz_map_json.c  the cluster map's JSON decoders, and the
#                              Raft log entries applied to a decoded map
#   auth      fuzz_auth.c      the cluster secret's challenge-response and
#                              the coordinator API's side of it
#   api       fuzz_api.c       every coordinator API request, checked
#                              against a coordinator at rest
#   listpack  fuzz_listpack.c  the listpack: validate and walk peer bytes,
#                              and operations checked against an array
#   intset    fuzz_intset.c    the intset: validate and walk peer bytes,
#                              and operations checked against a sorted array
#   quicklist fuzz_quicklist.c the quicklist: list operations at small node
#                              limits checked against an array
#   skiplist  fuzz_skiplist.c  the sorted set's skiplist: operations,
#                              ranks and ranges checked against an array
#   effect    fuzz_effect.c    the replica's side of collection replication:
#                              NARF.* effects and sync messages through the
#                              engine as a peer, every key read back, and
#                              used_memory back at its start after FLUSHALL
#   pipeline  fuzz_pipeline.c  the data node's look-ahead: a request stream
#                              run in reads through it and parsed in place
#                              must give the same replies
# FUZZ_SECONDS (default 30) is the whole budget, split evenly between the
# targets run (building them is not counted). Prints one summary line per
# target and exits non-zero when libFuzzer finds a crash, a leak, an
# undefined behaviour report or a broken invariant in any of them;
# reproducers and logs are left in build-fuzz/ (FUZZ_VERBOSE=1
# build-fuzz/fuzz_api REPRODUCER prints the requests and their answers).
#
#   tests/fuzz/run.sh                 # all targets, from anywhere in the repo
#   FUZZ_SECONDS=600 tests/fuzz/run.sh
#   tests/fuzz/run.sh resp            # only fuzz_resp, with the whole budget
#   FUZZ_SECONDS=20 tests/fuzz/run.sh map_json auth api
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build-fuzz"
seconds=${FUZZ_SECONDS:-30}
targets=${*:-frame resp http raft_hs map_json auth api listpack intset quicklist skiplist effect pipeline}

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
# up to 0 bytes, 1 argument, inline lines up to 0 bytes; its low bit also
# limits the reply framer to 64-byte bulks), then the stream.
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
	seed negcount '\021\377*-10\r\n*-9223372036854775808\r\n*-\r\nPING\r\n'
	# Replies for the framer ('%%' is a RESP3 map: the seed is a format).
	seed resp3 '\000\376%%2\r\n_\r\n#t\r\n,1.5\r\n=5\r\ntxt:x\r\n'
	seed attrib '\000\377|1\r\n+a\r\n(-12\r\n>2\r\n~1\r\n!1\r\nE\r\n*-1\r\n'
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

# Seed format (see fuzz_map_json.c): lines, a map and then log entries.
seeds_map_json() {
	settings='"settings":{"replication":2,"node_timeout_ms":600,"ack":"all","moves":1024,"min_isr":1,"on_lost":"empty"}'
	coords='"coordinators":[{"id":1,"raft":"127.0.0.1:7101","api":"127.0.0.1:7001"}]'
	nodes='"nodes":[{"id":1,"addr":"127.0.0.1:7201","boot_id":"a","state":"up"},{"id":2,"addr":"127.0.0.1:7202","boot_id":"b","state":"up","isr_dropped":4},{"id":3,"addr":"localhost:7203","boot_id":"c","state":"joining"}]'
	slots='"slots":[{"from":0,"to":8191,"primary":1,"replicas":[2],"isr":[2],"epoch":3,"move":2},{"from":8192,"to":16383,"primary":2,"replicas":[1],"isr":[],"epoch":4,"born":2}]'
	map='{"epoch":5,"next_node":4,"next_coord":2,"lost_slots":1,'$settings,$coords,$nodes,$slots'}\n'
	empty='"slots":[{"from":0,"to":16383,"primary":0,"replicas":[],"isr":[]}]'
	seed map "$map"
	seed entries "$map"'{"v":1,"type":"node_state","node":3,"state":"up"}\n{"v":1,"type":"assign","base_epoch":6,"slots":[{"from":100,"to":200,"primary":3,"replicas":[1,2],"isr":[1],"move":1}]}\n{"v":1,"type":"isr","primary":2,"node":1,"add":[[8192,9000]],"since":7}\n{"v":1,"type":"handoff","primary":1,"slots":[[0,50]]}\n{"v":1,"type":"node_state","node":1,"state":"down"}\n{"v":1,"type":"leave","node":2,"if_room":true}\n{"v":1,"type":"node_state","node":1,"state":"removed"}\n{"v":1,"type":"node_forget","node":1}\n'
	seed refused "$map"'{"v":1,"type":"isr","primary":1,"node":2,"add":[[0,9]],"since":3}\n{"v":1,"type":"assign","base_epoch":4,"slots":[]}\n{"v":1,"type":"node_state","node":3,"state":"removed"}\n{"v":2,"type":"leave","node":1}\n{"v":1,"type":"nope"}\n{"v":1,"type":"isr","primary":1,"node":2,"drop":true}\n{"v":1,"type":"node_join","addr":"127.0.0.1:7201","boot_id":"a2"}\n{"v":1,"type":"node_forget","node":2}\n'
	seed new '{"epoch":0,"next_node":1,"nodes":[],'"$empty"'}\n{"v":1,"type":"init","coords":[{"id":1,"raft":"127.0.0.1:7101","api":"127.0.0.1:7001"}],"settings":{"replication":3,"on_lost":"wait"}}\n{"v":1,"type":"node_join","addr":"127.0.0.1:7201","boot_id":"x"}\n{"v":1,"type":"coords_set","coords":[{"id":2,"raft":"localhost:7102","api":"localhost:7002"}]}\n{"v":1,"type":"settings","min_isr":2,"ack":"primary","moves":7}\n'
	seed old '{"epoch":3,"next_node":2,"coordinators":[],"nodes":[{"id":1,"addr":"localhost:7201","boot_id":"q","state":"down"}],'"$empty"'}\n'
	seed gap '{"epoch":1,"next_node":1,"nodes":[],"slots":[{"from":0,"to":9,"primary":0,"replicas":[],"isr":[]},{"from":11,"to":16383,"primary":0,"replicas":[],"isr":[]}]}\n'
	seed no_primary '{"epoch":1,"next_node":3,"nodes":[],"slots":[{"from":0,"to":16383,"primary":0,"replicas":[2],"isr":[2]}]}\n'
	seed isr '{"epoch":1,"next_node":3,"nodes":[],"slots":[{"from":0,"to":16383,"primary":1,"replicas":[2,2],"isr":[1]}]}\n'
	seed move '{"epoch":1,"next_node":3,"nodes":[],"slots":[{"from":0,"to":16383,"primary":1,"replicas":[2],"isr":[],"move":2}]}\n'
	seed order '{"epoch":1,"next_node":9,"nodes":[{"id":2,"addr":"127.0.0.1:2","boot_id":"b","state":"up"},{"id":1,"addr":"127.0.0.1:1","boot_id":"a","state":"gone","isr_dropped":2}],'"$empty"'}\n'
	seed coords '{"epoch":1,"next_node":1,"next_coord":2,"coordinators":[{"id":3,"raft":"127.0.0.1:1","api":"127.0.0.1:2"},{"id":3,"raft":"127.0.0.1:3","api":"127.0.0.1:4"}],"settings":{"replication":1,"min_isr":2},"nodes":[],'"$empty"'}\n'
	zoned='"nodes":[{"id":1,"addr":"127.0.0.1:7201","boot_id":"a","state":"up","zone":"z1"},{"id":2,"addr":"127.0.0.1:7202","boot_id":"b","state":"up","zone":"z1"},{"id":3,"addr":"127.0.0.1:7203","boot_id":"c","state":"up"}]'
	zmap='{"epoch":5,"next_node":4,'$settings,$zoned',"slots":[{"from":0,"to":8191,"primary":1,"replicas":[2],"isr":[2]},{"from":8192,"to":16383,"primary":3,"replicas":[1],"isr":[1]}]}\n{"v":1,"type":"node_join","addr":"127.0.0.1:7204","boot_id":"d","zone":"z2"}\n{"v":1,"type":"node_join","addr":"127.0.0.1:7205","boot_id":"e","zone":"has space"}\n{"v":1,"type":"node_state","node":2,"state":"down"}\n'
	seed zones "$zmap"
	seed types '{"epoch":"1","next_node":1.5,"nodes":{},"slots":null}\n[1,2]\n'
}

# Seed format (see fuzz_auth.c): flags, key text length, key text, 72
# bytes of exchange material (id, nonce_c, nonce_s, MAC), request lines.
auth_seed() {
	# shellcheck disable=SC2059 # the key text may hold escapes too
	len=$(printf "$3" | wc -c)
	seed "$1" "\\$(printf %03o "$2")\\$(printf %03o "$len")$3$4$5"
}
seeds_auth() {
	m='\000\000\000\000\000\000\000\005AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC'
	same='\000\000\000\000\000\000\000\000AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
	s='correct horse battery staple 42'
	nonce='00112233445566778899aabbccddeeff'
	hello_op='{"op":"auth","role":"operator","id":0,"nonce":"'$nonce'"}\n'
	hello_node='{"op":"auth","role":"node","id":7,"nonce":"'$nonce'"}\n'
	proof='{"op":"auth","proof":"'$nonce$nonce'"}\n'
	# flags: 0 operator "api"; 045 node "raft", a genuine caller; 061
	# node "api", the keys a node key, a genuine caller; 012 coord
	# "peer"; 017 no role, ""; +0100 two secrets (a rotation), +0200
	# the arbitrary exchange on the second
	auth_seed operator 0 "$s" "$m" "$hello_op$proof"
	auth_seed genuine 045 "$s" "$m" "$hello_node"'{"op":"map"}\n'
	auth_seed node_key 061 "$s" "$m" "$hello_node"
	auth_seed node_key_op 021 "$s" "$m" "$hello_op"
	auth_seed key_text 001 "node:$nonce$nonce" "$m" "$hello_node$proof"
	auth_seed bad_key 001 "node:$nonce" "$m" "$hello_node"
	auth_seed short 000 "short" "$m" '{"op":"ping"}\n'"$hello_op"
	auth_seed coord 012 "$s" "$m" '{"op":"auth","role":"coord","nonce":"'$nonce'"}\n'
	auth_seed no_role 017 "$s" "$same" '{"op":"auth","role":"root","id":-1,"nonce":"'$nonce'"}\n'
	auth_seed echo 001 "$s" "$same" '{"op":"auth","role":"node","id":"7","nonce":12}\n'
	auth_seed hex 040 "00112233445566778899AABBCCDDEEFF" "$m" "$hello_op"'{"op":"auth","proof":true}\n'
	auth_seed rotation 0145 "$s\\nthe previous secret, 16+" "$m" "$hello_node"
	auth_seed rotation_op 0340 "the next secret is long\\n$s" "$m" "$hello_op"
	auth_seed rotation_node 0161 "$s\\nthe previous secret, 16+" "$m" "$hello_node"
	auth_seed rotation_mixed 0301 "node:$nonce$nonce\\n$s" "$m" "$hello_node"
	auth_seed empty 000 "" "" ""
}

# Seed format (see fuzz_api.c): byte 0 = the caller's role and the
# member's state (0 operator; +1 node; +2 leader not ready, +4 follower,
# +6 candidate; +8 it can prove it leads; +16 a Raft change in flight;
# +32 three coordinators), byte 1 = read size (0: whole), then requests.
# The map has nodes 1, 2, 7 up, 3 joining, 4 down, 5 leaving, 6 removed,
# boot ids a1..g1.
seeds_api() {
	seed ops '\010\000{"op":"ping"}\n{"op":"map"}\n{"op":"map","epoch":20}\n{"op":"status"}\n{"op":"coords"}\n{"op":"join","addr":"127.0.0.1:7299","boot_id":"z1"}\n{"op":"heartbeat","node":1,"boot_id":"a1","epoch":3,"keys":10,"used_memory":99}\n{"op":"leave","node":2,"if_room":true}\n{"op":"settings","replication":3,"node_timeout_ms":800,"ack":"primary","moves":16,"min_isr":2,"on_lost":"wait"}\n{"op":"isr","node":1,"boot_id":"a1","peer":7,"add":[[0,99],[50,8191]],"since":4}\n{"op":"isr","node":2,"boot_id":"b1","peer":5,"drop":true}\n{"op":"handoff","node":1,"boot_id":"a1","slots":[[0,8191]]}\n{"op":"coord_add","id":4,"raft":"127.0.0.1:7104","api":"127.0.0.1:7004"}\n{"op":"coord_replace","old":4,"id":5,"raft":"127.0.0.1:7105","api":"127.0.0.1:7005"}\n'
	seed node '\011\000{"op":"heartbeat","node":7,"boot_id":"g1"}\n{"op":"leave","node":7,"boot_id":"g1","if_room":true}\n{"op":"leave","node":1}\n{"op":"settings"}\n{"op":"coord_remove","id":1}\n{"op":"join","addr":"localhost:7207","boot_id":"g2"}\n{"op":"isr","node":2,"boot_id":"b1","peer":1,"add":[]}\n{"op":"handoff","node":5,"boot_id":"e1","slots":[]}\n'
	seed changing '\070\000{"op":"coords"}\n{"op":"coord_remove","id":3}\n{"op":"coord_add","id":9,"raft":"127.0.0.1:7109","api":"127.0.0.1:7009"}\n{"op":"coord_replace","old":2,"id":9,"raft":"127.0.0.1:7102","api":"127.0.0.1:7009"}\n{"op":"status"}\n'
	seed three '\050\000{"op":"coord_replace","old":3,"id":4,"raft":"127.0.0.1:7104","api":"127.0.0.1:7004"}\n{"op":"coords"}\n{"op":"coord_remove","id":4}\n{"op":"coord_add","id":4,"raft":"127.0.0.1:7104","api":"127.0.0.1:7004"}\n'
	seed follower '\004\000{"op":"map"}\n{"op":"ping"}\n{"op":"nope"}\n'
	seed not_ready '\002\000{"op":"join","addr":"127.0.0.1:7299","boot_id":"z1"}\n{"op":"ping"}\n'
	seed candidate '\007\000{"op":"status"}\n{"op":"settings"}\n'
	seed no_lease '\000\000{"op":"heartbeat","node":2,"boot_id":"b1"}\n{"op":"heartbeat","node":4,"boot_id":"d1"}\n{"op":"heartbeat","node":6,"boot_id":"f1"}\n'
	seed bad '\010\000{"op":"isr","node":1,"boot_id":"a1","peer":1,"add":[[5,1]]}\n{"op":"isr","node":1,"boot_id":"a1","peer":9,"drop":false}\n{"op":"handoff","node":1,"boot_id":"a1","slots":[[0,16384]]}\n{"op":"settings","min_isr":5}\n{"op":"settings","node_timeout_ms":100}\n{"op":"join","addr":"h","boot_id":"\\u00e9"}\n{"op":"leave","node":4294967296}\n{"op":"map","epoch":"1"}\n{"op":7}\n{"a":1}\n[1]\n{"op":"ping"}\n'
	seed chunks '\011\003{"op":"heartbeat","node":1,"boot_id":"a1"}\n\n{"op":"leave","node":1,"boot_id":"a1"}\n{"op":"map"'
	seed deep '\010\000{"op":"map","epoch":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}\n'
	seed deltas '\010\000{"op":"settings","moves":16}\n{"op":"isr","node":1,"boot_id":"a1","peer":7,"add":[[0,99]],"since":4}\n{"op":"heartbeat","node":1,"boot_id":"a1","epoch":20,"deltas":1}\n{"op":"heartbeat","node":1,"boot_id":"a1","epoch":21,"deltas":1}\n{"op":"heartbeat","node":1,"boot_id":"a1","epoch":0,"deltas":1}\n{"op":"map","epoch":20,"deltas":1}\n{"op":"map","epoch":20,"deltas":1,"full":true}\n{"op":"map","epoch":3,"deltas":1}\n{"op":"isr","node":2,"boot_id":"b1","peer":1,"add":[],"epoch":20,"deltas":1}\n{"op":"handoff","node":5,"boot_id":"e1","slots":[],"epoch":-1,"deltas":true}\n'
}

# Seed format (see fuzz_listpack.c): the whole input is both a listpack to
# validate and a program: op byte, index byte, length byte and value bytes
# (254: a long string, 255: an int64 from the next 8 bytes).
seeds_listpack() {
	seed empty '\011\000\000\000\000\000\000\000\377'
	seed two '\016\000\000\000\002\000\000\000\201a\002\005\001\377'
	seed ops '\000\000\003abc\001\000\377\200\000\000\000\000\000\000\000\002\001\0020x\003\000\003-12\004\001\376\010\007\000\003abc\005\002\000\006\000\003'
	seed ints '\000\000\003127\000\000\003128\000\000\002-0\000\000\00200\000\000\023-922337203685477580\001\000\0054095\004\000\005-4096'
}

# Seed format (see fuzz_intset.c): the whole input is both an intset to
# validate and a program: an op byte (low 3 bits: 0-2 add, 3 remove, 4
# remove a member, 5 find, 6 get, 7 random; bits 3-4: the value is 1, 2, 4
# or 8 bytes) and the value's bytes, little-endian.
seeds_intset() {
	seed empty '\002\000\000\000\000\000\000\000'
	seed two '\002\000\000\000\002\000\000\000\376\377\007\000'
	seed wide '\010\000\000\000\001\000\000\000\000\000\000\000\000\000\000\200'
	seed upgrades '\000\005\010\377\177\010\000\200\020\000\000\001\000\030\001\000\000\000\000\000\000\200\003\005\004\000\005\377\006\001\007'
	seed small '\000\001\000\002\000\003\001\002\003\002\004\000\005\003\006\002\007'
}

build_intset() {
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
		common/intset.c tests/fuzz/fuzz_intset.c -o "$1"
}

# Seed format (see fuzz_quicklist.c): a fill byte (0-7: fills 1 2 3 4 7 0
# -1 -2), then programs of op byte, two argument bytes, length byte and
# value bytes (254: a long string, 255: an int64 from the next 8 bytes).
seeds_quicklist() {
	seed pushes '\000\001\000\000\001a\001\000\000\001b\000\000\000\001c\001\000\000\0030x1\002\001\000\001d\003\002\000\001e\014\000\000\000'
	seed ops '\001\001\000\000\00212\001\000\000\003007\001\000\000\002-0\001\000\000\00212\004\001\001\001z\010\000\000\00212\011\377\003\00212\012\376\002\000\013\002\007\000\005\001\000\001\006\000\000\000\007\001\375\000'
	seed big '\006\001\000\000\376\377\001\000\000\001a\001\000\000\376\310\002\001\000\376\377\004\002\000\001s\010\000\000\376\377\006\001\000\000'
	seed ints '\002\001\000\000\377\000\000\000\000\000\000\000\000\001\000\000\377\200\000\000\000\000\000\000\000\000\000\000\377\377\377\377\377\377\377\377\377\011\001\000\002-1'
}

build_quicklist() {
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
		common/listpack.c common/quicklist.c \
		tests/fuzz/fuzz_quicklist.c -o "$1"
}

# Seed format (see fuzz_skiplist.c): a mode byte, then per op: op, index,
# arguments. "big" inserts 150 members over 16 scores, then queries.
seeds_skiplist() {
	seed empty '\000'
	seed scores '\020\000\000\001a\003\000\000\002ab\002\000\000\000\000\001\000\001b\377\000\000\000\000\000\000\360\077\002\001\001\005\000\000\002\003\006\000\001\000\001\007\000\001\002\003\000\000\003'
	seed lex '\001\000\000\001a\000\000\000\001b\001\000\000\002a\000\000\000\000\002ab\000\005\000\004\002\001a\001\006\000\004\003\001a\001\007\000\000\005'
	big='\040'
	i=0
	while [ "$i" -lt 150 ]; do
		big="$big\\000\\000\\002\\$(printf %03o $((i % 7 + 97)))"
		big="$big\\$(printf %03o $((i / 7 + 48)))\\$(printf %03o $((i % 16)))"
		i=$((i + 1))
	done
	seed big "$big"'\005\000\003\004\020\005\000\004\002\001b\003\001c\007\000\012\020'
}

build_skiplist() {
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
		common/skiplist.c tests/fuzz/fuzz_skiplist.c -o "$1"
}

# Seed format (see fuzz_effect.c): a thresholds byte, then per op a byte
# choosing the message and its arguments. "grow" pushes and adds past
# every threshold; "sync" loads each type with CLOAD and CAPPEND.
seeds_effect() {
	seed empty '\000'
	seed grow '\001\000\001\000\377\010\001\002\003\004\005\006\007\010\002\001\000\377\010\141\142\143\144\145\146\147\150\004\001\002\377\004\001\001\002\002\003\003\004\004\007\001\003\377\010\001\002\003\004\005\006\007\010\013\001\003\377\001\002\003\010\001\003\377\003'
	seed sync '\022\017\001\000\000\000\377\004\001\002\003\004\020\001\000\000\377\004\005\006\007\010\017\001\001\002\000\377\006\001\002\003\004\005\006\016\001\001\377\001\001'
}

# The data node's engine with everything it reaches (no main.c, no
# jemalloc: INFO's allocator stats are compiled out), compiled on every
# core: ~70 files, the slowest build by far, so once per run for the
# targets that link it (effect, pipeline).
objs="$out/engine-obj"
engine_objs() {
	[ -f "$corpus_root/engine-objs-built" ] && return 0
	rm -rf "$objs" "$out/effect-obj" && mkdir -p "$objs" || return 1
	# shellcheck disable=SC2016 # $1 and $2 belong to the inner sh
	find datanode common -name '*.c' ! -name main.c -print0 | xargs -0 -P "$(nproc)" \
		-I{} sh -c 'clang -c -g -O1 -fsanitize=fuzzer-no-link,address,undefined \
			-I. -DNARF_VERSION=\"fuzz\" $(pkg-config --cflags libuv jansson) \
			"$1" -o "$2/$(echo "$1" | tr / _).o"' sh {} "$objs" || return 1
	touch "$corpus_root/engine-objs-built"
}

# Link a target ($2: its source) with the engine's objects.
link_engine() {
	engine_objs || return 1
	# shellcheck disable=SC2046 # pkg-config output is meant to be split
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I. "$objs"/*.o \
		"$2" -lhttp_parser -lm \
		$(pkg-config --libs libuv jansson libssl libcrypto) -o "$1"
}

build_effect() {
	link_engine "$1" tests/fuzz/fuzz_effect.c
}

# Seed format (see fuzz_pipeline.c): chunk sizes in the two nibbles of
# byte 0 (0 = the rest), then the request stream.
# shellcheck disable=SC2016 # the '$' of bulk lengths is literal
seeds_pipeline() {
	seed strings '\000*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$4\r\nINCR\r\n$4\r\n{a}b\r\n*3\r\n$6\r\nAPPEND\r\n$1\r\na\r\n$2\r\nxy\r\n*2\r\n$3\r\nDEL\r\n$1\r\na\r\n'
	seed inline '\043SET k1 v\r\nSET k1 w\r\nINCR n\r\nINCR n\r\nSET k2 x\r\nDEL k1\r\nGET k2\r\nGET k1\r\nEXISTS k1 k2\r\nPING\r\n\r\nINCR n\r\n'
	seed colls '\125*3\r\n$4\r\nSADD\r\n$1\r\ns\r\n$1\r\nx\r\n*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n$1\r\nv\r\n*3\r\n$9\r\nSISMEMBER\r\n$1\r\ns\r\n$1\r\nx\r\n*3\r\n$4\r\nHGET\r\n$1\r\nh\r\n$1\r\nf\r\n*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$1\r\n1\r\n$1\r\nm\r\n*3\r\n$6\r\nZSCORE\r\n$1\r\nz\r\n$1\r\nm\r\n*3\r\n$5\r\nLPUSH\r\n$1\r\nl\r\n$1\r\na\r\n*2\r\n$4\r\nLPOP\r\n$1\r\nl\r\n'
	seed mixed '\021*2\r\n$3\r\nGET\r\n$1\r\na\r\nGET b\r\n*1\r\n$4\r\nPING\r\n*0\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\nINCR a\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n'
	seed error '\000*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$x\r\n'
}

build_pipeline() {
	link_engine "$1" tests/fuzz/fuzz_pipeline.c
}

build_listpack() {
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
		common/listpack.c tests/fuzz/fuzz_listpack.c -o "$1"
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

# The map checks shared by fuzz_map_json and fuzz_api, built without
# libFuzzer's coverage instrumentation: they walk all 16384 slots several
# times per input, which instrumented would slow the fuzzing down.
build_map_check() {
	clang -c -g -O1 -fsanitize=address,undefined -I. \
		tests/fuzz/map_check.c -o "$out/map_check.o"
}

build_map_json() {
	# shellcheck disable=SC2046 # pkg-config output is meant to be split
	build_map_check && clang -g -O1 -fsanitize=fuzzer,address,undefined \
		-I. common/map.c common/map_json.c common/errors.c \
		common/flags.c "$out/map_check.o" tests/fuzz/fuzz_map_json.c \
		$(pkg-config --cflags --libs jansson libuv) -o "$1"
}

build_auth() {
	# shellcheck disable=SC2046 # pkg-config output is meant to be split
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
		common/auth.c common/errors.c coordinator/api_auth.c \
		tests/fuzz/fuzz_auth.c \
		$(pkg-config --cflags --libs jansson libcrypto) -o "$1"
}

# The API with what it reaches (leader.c, members.c, ...) and the Raft
# accessors of raftnode.c, on a coordinator at rest (no libraft instance
# runs): everything of the coordinator but main.c and its /metrics.
build_api() {
	# shellcheck disable=SC2046 # pkg-config output is meant to be split
	build_map_check && clang -g -O1 -fsanitize=fuzzer,address,undefined \
		-I. common/auth.c common/buf.c common/errors.c \
		common/flags.c common/frame.c common/jclient.c common/log.c \
		common/map.c common/map_json.c common/map_ring.c coordinator/api.c \
		coordinator/api_auth.c coordinator/api_map.c coordinator/hbtab.c \
		coordinator/leader.c \
		coordinator/members.c coordinator/members_plan.c \
		coordinator/planner.c coordinator/plan_cache.c \
		coordinator/raft_hs.c \
		coordinator/raftnode.c coordinator/removal.c \
		coordinator/stage.c coordinator/transport.c coordinator/zones.c \
		common/tls.c common/tls_relay.c common/tls_sock.c \
		tests/unit/coord_fixture.c "$out/map_check.o" \
		tests/fuzz/fuzz_api.c \
		$(pkg-config --cflags --libs jansson libuv raft libssl libcrypto) \
		-o "$1"
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
	map_json) build_map_json "$bin" && seeds_map_json ;;
	auth) build_auth "$bin" && seeds_auth ;;
	api) build_api "$bin" && seeds_api ;;
	listpack) build_listpack "$bin" && seeds_listpack ;;
	intset) build_intset "$bin" && seeds_intset ;;
	quicklist) build_quicklist "$bin" && seeds_quicklist ;;
	skiplist) build_skiplist "$bin" && seeds_skiplist ;;
	effect) build_effect "$bin" && seeds_effect ;;
	pipeline) build_pipeline "$bin" && seeds_pipeline ;;
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
	frame | resp | http | raft_hs | map_json | auth | api | listpack | \
		intset | quicklist | skiplist | effect | pipeline) ;;
	*)
		echo "run.sh: unknown target '$t'" \
			"(frame, resp, http, raft_hs, map_json, auth, api," \
			"listpack, intset, quicklist, skiplist, effect," \
			"pipeline)" >&2
		exit 2
		;;
	esac
	run_target "$t" || status=$?
done
exit "$status"
