#!/bin/bash
# bridge-bench.sh - messages per second through shmq-bridge (local acked
# queue -> out bridge -> nats-server -> in bridge -> local queue), 16 B
# and 4 KiB, next to a bare JetStream publisher and pull consumer
# (js-bare: libnats alone, same window of 256 and batch of 256).  Run by
# `make bench` (appended to its report) and `make bench-bridge`.
#
# Everything runs on this machine: a private shmqd and nats-server in a
# temporary directory, removed at the end.  Each figure is the median of
# RUNS (3) runs of COUNT messages, timed from the first put to the last
# get (bridge) or from the first publish to the last ack (bare).  Figures
# are indicative: the CPUs are shared with whatever else runs.
#
# usage: bridge-bench.sh BUILDDIR [--output FILE] (appends a section)
set -u
build=$(cd "${1:-.}" && pwd)
shift
out=""
[ "${1:-}" = --output ] && out=$2
RUNS=${RUNS:-3}
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
BRIDGE=$build/bridge/shmq-bridge
BARE=$build/tools/bench/js-bare
QCTL=$build/tools/qctl
if ! [ -x "$BRIDGE" ] || ! [ -x "$BARE" ] || ! [ -x "$NATS" ]; then
	echo "bridge bench skipped: needs shmq-bridge (libnats) and nats-server"
	exit 0
fi
dir=$(mktemp -d /tmp/bridge-bench.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	[ -n "${npid:-}" ] && kill -TERM "$npid" 2>/dev/null && wait "$npid" 2>/dev/null
	[ -f "$dir/s.pid" ] && kill -TERM "$(cat "$dir/s.pid")" 2>/dev/null
	sleep 0.2
	# shmqd removes nothing on exit: the segments are named after the
	# socket (FNV-1a-64 of its path).
	local s=$dir/s.sock h=$((0xcbf29ce484222325)) i b
	for ((i = 0; i < ${#s}; i++)); do
		printf -v b '%d' "'${s:i:1}"
		h=$(((h ^ (b & 255)) * 0x100000001b3))
	done
	rm -f /dev/shm/"$(printf 'shmq.%016x.' "$h")"*
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export SHMQ_SOCKET=$dir/s.sock SHMQ_NO_AUTOSTART=1
"$build/daemon/shmqd" --socket "$SHMQ_SOCKET" --pid-file "$dir/s.pid" \
	--log "$dir/shmqd.log" || exit 1
mkdir -p "$dir/js"
"$NATS" -js -a 127.0.0.1 -p -1 -sd "$dir/js" --ports_file_dir "$dir" \
	>"$dir/nats.log" 2>&1 &
npid=$!
for _ in $(seq 100); do ls "$dir"/*.ports >/dev/null 2>&1 && break; sleep 0.05; done
url=$(sed -n 's/.*"\(nats:\/\/[^"]*\)".*/\1/p' "$dir"/*.ports)
[ -n "$url" ] || { echo "nats-server did not start"; exit 1; }

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
median() { tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
human() { awk -v r="$1" 'BEGIN { if (r >= 1e6) printf "%.2f M/s", r / 1e6;
	else if (r >= 1e3) printf "%.1f k/s", r / 1e3; else printf "%d /s", r }'; }

# one_bridge COUNT SIZE: the rate of one run through the bridges.
one_bridge() {
	local n=$1 size=$2 k=$RANDOM t0 t1
	"$QCTL" create "a$k" --acked --capacity 4096 --max-msg 8192 >/dev/null || return 1
	"$QCTL" create "b$k" --capacity 4096 --max-msg 8192 >/dev/null || return 1
	awk -v n="$n" -v s="$size" 'BEGIN { x = sprintf("%*s", s, ""); gsub(/ /, "x", x);
		for (i = 0; i < n; i++) print x }' >"$dir/in.txt"
	"$BRIDGE" out "a$k" "$url/B$k" --create --max-msgs 1000000 2>>"$dir/err" &
	local o=$!
	pids+=("$o")
	# The in bridge needs the stream the out bridge creates: wait until
	# the out bridge waits for messages.
	for _ in $(seq 500); do
		"$QCTL" stat "a$k" --json | grep -q '"blocked_get":[1-9]' && break
		sleep 0.01
	done
	"$BRIDGE" in "$url/B$k" "b$k" 2>>"$dir/err" &
	local i=$!
	pids+=("$i")
	t0=$(now)
	"$QCTL" cat "b$k" >/dev/null &
	local c=$!
	"$QCTL" put "a$k" --close <"$dir/in.txt"
	wait "$c"
	t1=$(now)
	wait "$o" "$i"
	"$QCTL" rm "a$k"; "$QCTL" rm "b$k"
	rate "$n" "$t0" "$t1"
}

one_bare() {
	local n=$1 size=$2 t0 t1
	"$BARE" setup "$url" BARE || return 1
	t0=$(now)
	"$BARE" sub "$url" BARE "$n" 256 &
	local s=$!
	"$BARE" pub "$url" BARE "$n" "$size" 256
	wait "$s"
	t1=$(now)
	rate "$n" "$t0" "$t1"
}

{
	echo
	echo "## shmq-bridge over NATS JetStream (indicative)"
	echo
	echo "One machine, a private nats-server $("$NATS" --version 2>/dev/null | awk '{print $2}'), file storage;"
	echo "median of $RUNS runs.  bridge: qctl put -> acked queue -> out bridge"
	echo "-> stream -> in bridge -> queue -> qctl cat.  bare: js-bare publisher"
	echo "(window 256, message ids) and pull consumer (batch 256, acks)."
	echo
	echo "| size | messages | bridge | bare JetStream | bridge ÷ bare |"
	echo "|---|---:|---:|---:|---:|"
	for spec in "16 200000" "4096 50000"; do
		set -- $spec
		br=""; ba=""
		for _ in $(seq "$RUNS"); do
			br="$br $(one_bridge "$2" "$1")"
			ba="$ba $(one_bare "$2" "$1")"
		done
		mb=$(echo $br | median); ma=$(echo $ba | median)
		printf '| %s B | %s | %s | %s | %s |\n' "$1" "$2" "$(human "$mb")" \
			"$(human "$ma")" "$(awk -v a="$mb" -v b="$ma" 'BEGIN { printf "%.2f", a / b }')"
	done
} | if [ -n "$out" ]; then tee -a "$out"; else cat; fi
